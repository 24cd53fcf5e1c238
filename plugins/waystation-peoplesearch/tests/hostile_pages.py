"""Hostile TruePeopleSearch pages built in code (too large to keep as fixtures)."""

from __future__ import annotations


def many_phones_detail(n: int) -> str:
    """John A Smith's detail page listing ``n`` phones in one container (~60 bytes each)."""
    phones = "".join(
        f"<a data-link-to-more='phone' href='/find/phone/x'><span>(303) {200 + i // 10000:03d}-{i % 10000:04d}"
        "</span></a> - <span class='smaller'>Wireless</span><br>" for i in range(n))
    return ("<html><head><title>John A Smith | TruePeopleSearch.com</title></head><body>"
            "<div id='personDetails' data-fn='John' data-ln='Smith' data-age='45' data-city='Denver' "
            f"data-state='CO'><h1>John A Smith</h1><div class='row'>{phones}</div></div></body></html>")
