"""Every page carries a Content-Security-Policy that admits only this site, the bucket and the IdP."""

from fxfer.middleware import content_security_policy


def _directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in policy.split(";")) if d}


def test_pages_forbid_foreign_scripts_and_framing(client):
    directives = _directives(client.get("/"))
    assert directives["script-src"] == ["'self'", "'wasm-unsafe-eval'"]  # WebAssembly compilation, not eval
    assert directives["worker-src"] == ["'self'", "blob:"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["default-src"] == ["'self'"]


def test_uploads_may_reach_the_bucket_and_nothing_else(client, settings):
    directives = _directives(client.get("/healthz"))
    assert directives["connect-src"][0] == "'self'"
    others = directives["connect-src"][1:]
    assert others and all(settings.FXFER_BUCKET in origin or "amazonaws.com" in origin for origin in others)
    assert "*" not in " ".join(others)


def test_the_policy_follows_the_configured_endpoints(settings):
    settings.FXFER_S3_ENDPOINT = "http://127.0.0.1:4566"
    settings.FXFER_SAML_IDP_SLO_URL = "https://login.example.net/tenant/saml2"
    policy = content_security_policy()
    assert "connect-src 'self' http://127.0.0.1:4566" in policy
    assert "https://login.example.net" in policy.split("form-action")[1].split(";")[0]
