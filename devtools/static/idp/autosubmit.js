// The local IdP's HTTP-POST binding: send the signed response on to fxfer's ACS at once.
document.getElementById("saml-post").submit();
