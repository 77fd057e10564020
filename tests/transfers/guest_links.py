"""A guest's browser opening a mailed link: the link only moves its token into a cookie and redirects to the
link's token-free page, whose address every later step (code, verify) builds on."""

from urllib.parse import urlsplit


def open_link(client, link: str) -> str:
    """Open `link` (a mailed URL or its path) in `client`; the token-free page's path the browser lands on."""
    response = client.get(urlsplit(link).path)
    assert response.status_code == 303, response.status_code
    page = response["Location"]
    assert page.startswith("/guest/link/"), page
    return page
