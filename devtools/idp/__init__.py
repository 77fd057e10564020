"""A local SAML IdP (pysaml2, an implementation independent of the SP's python3-saml) for `make run` and tests.

Mounted under /idp/ only when settings.FXFER_LOCAL_IDP is true. Never shipped: devtools is not packaged.
"""
