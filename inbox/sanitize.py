"""HTML sanitising for message bodies (nh3): what a reply or an inbound email may contain when shown."""

import html
import re

import nh3

ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "hr", "i", "li", "ol", "p",
    "pre", "s", "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}
URL_SCHEMES = {"http", "https", "mailto", "tel"}


def clean_html(value: str) -> str:
    """Sanitised HTML: an allow-list of formatting tags, safe link schemes, no scripts, styles or handlers."""
    return nh3.clean(
        value or "",
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


_BLOCK_END = re.compile(r"</(p|div|li|h[1-6]|tr|blockquote|pre)>|<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


def html_to_text(value: str) -> str:
    """Plain text of (sanitised) HTML, for SMS-like previews, search and the text/plain email part."""
    text = _BLOCK_END.sub("\n", value or "")
    text = html.unescape(_TAG.sub("", text))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def text_to_html(value: str) -> str:
    paragraphs = [p for p in re.split(r"\n{2,}", value.strip()) if p]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
