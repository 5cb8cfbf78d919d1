"""A corpus of cross-site scripting payloads, injected by ``tests/e2e/test_xss.py`` everywhere staff and patients see
text that came from outside (email HTML, SMS, chat, names, templates, file names).

Every payload that could run reports itself: it calls ``alert``/``confirm``/``prompt`` (a dialog the test listens
for) or sets ``window.__xss`` (checked after each page). Short ones fit an 80-character name field."""

FLAG = "window.__xss=1"

PAYLOADS: list[str] = [
    # Script elements
    "<script>window.__xss=1</script>",
    "<script>alert(1)</script>",
    "<SCRIPT SRC=data:text/javascript,alert(1)></SCRIPT>",
    "<script/src=data:,window.__xss=1></script>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '"><script>alert(1)</script>',
    "'><script>window.__xss=1</script>",
    "</textarea><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "</script><script>alert(1)</script>",
    # Event handlers
    "<img src=x onerror=alert(1)>",
    "<img src=x onerror=window.__xss=1>",
    "<IMG SRC=x OnErRoR=alert(1)>",
    "<body onload=alert(1)>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "<details open ontoggle=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<select autofocus onfocus=alert(1)>",
    "<marquee onstart=alert(1)>x</marquee>",
    "<video><source onerror=alert(1)></video>",
    "<audio src=x onerror=alert(1)>",
    "<div onmouseover=alert(1) class=row>hover</div>",
    '" onmouseover="alert(1)" x="',
    "' autofocus onfocus='alert(1)' x='",
    "<a href=# onclick=alert(1)>click</a>",
    "<p onpointerenter=window.__xss=1>enter</p>",
    # URLs
    "<a href=javascript:alert(1)>link</a>",
    "<a href='JaVaScRiPt:alert(1)'>link</a>",
    "<a href='jav&#x09;ascript:alert(1)'>tab</a>",
    "<a href='&#106;avascript:alert(1)'>ent</a>",
    "<a href=data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==>d</a>",
    "<a href=vbscript:msgbox(1)>vb</a>",
    "javascript:alert(1)",
    "<iframe src=javascript:alert(1)></iframe>",
    "<iframe srcdoc='<script>parent.__xss=1</script>'></iframe>",
    "<object data=javascript:alert(1)></object>",
    "<embed src=javascript:alert(1)>",
    "<form action=javascript:alert(1)><button>go</button></form>",
    "<math><a xlink:href=javascript:alert(1)>m</a></math>",
    "<base href=javascript:alert(1)//>",
    "<meta http-equiv=refresh content='0;url=javascript:alert(1)'>",
    "<link rel=import href=data:text/html,<script>alert(1)</script>>",
    # CSS
    "<div style=background:url(javascript:alert(1))>css</div>",
    "<div style='width:expression(alert(1))'>expr</div>",
    "<style>@import 'javascript:alert(1)';</style>",
    "<style>*{background:url(x)}</style><img src=x onerror=alert(1)>",
    # Broken, unclosed and nested markup
    "<img src=x onerror=alert(1)",
    "<<img src=x onerror=alert(1)//<",
    '<img """><script>alert(1)</script>">',
    "<!--<img src=--><img src=x onerror=alert(1)//>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<template><img src=x onerror=alert(1)></template>",
    "<xmp><img src=x onerror=alert(1)></xmp>",
    "<textarea><img src=x onerror=alert(1)></textarea>",
    # Encoded entities and escapes
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;img src=x onerror=alert(1)&#62;",
    "%3Cscript%3Ealert(1)%3C/script%3E",
    "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
    "<img src=x onerror=&#97;&#108;&#101;&#114;&#116;(1)>",
    # Right-to-left override and invisible characters
    "invoice\u202egpj.exe",
    "\u202e>tpircs/<)1(trela>tpircs<",
    "Maria\u200b<img src=x onerror=alert(1)>",
    "\u2066<svg onload=alert(1)>\u2069",
    # Template and attribute injection
    "{{ 7*7 }}",
    "{% load static %}{{ request.META }}",
    "{{constructor.constructor('alert(1)')()}}",
    "${alert(1)}",
    "<div hx-get=/accounts/logout/ hx-trigger=load>htmx</div>",
    "<div hx-on:click=alert(1)>hx-on</div>",
    "<img src=x hx-on::load=alert(1)>",
]

assert len(PAYLOADS) >= 50
