"""SVG images from tenants (logos, favicons), rebuilt from a whitelist: shapes, paths,
gradients, text and groups with their presentation attributes. Gone: scripts, event
handlers, foreignObject, styles that load anything, links to anywhere but the image itself
(or a data: PNG/JPEG), entities and DOCTYPEs (the parser resolves none and reaches no
network). Browsers show the result as an image, and Weft also serves it with a CSP that
sandboxes it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from .exceptions import InvalidInput

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ELEMENTS = {
    "svg", "g", "defs", "title", "desc", "symbol", "use", "path", "rect", "circle",
    "ellipse", "line", "polyline", "polygon", "text", "tspan", "textPath",
    "linearGradient", "radialGradient", "stop", "clipPath", "mask", "pattern", "image",
    "filter", "feGaussianBlur", "feOffset", "feBlend", "feColorMatrix", "feMerge",
    "feMergeNode", "feFlood", "feComposite", "style",
}  # fmt: skip
ATTRIBUTES = {
    "id", "class", "viewBox", "width", "height", "x", "y", "x1", "x2", "y1", "y2", "cx",
    "cy", "r", "rx", "ry", "d", "points", "fill", "fill-opacity", "fill-rule", "stroke",
    "stroke-width", "stroke-linecap", "stroke-linejoin", "stroke-opacity",
    "stroke-dasharray", "stroke-dashoffset", "stroke-miterlimit", "opacity", "transform",
    "offset", "stop-color", "stop-opacity", "gradientUnits", "gradientTransform", "fx", "fy",
    "spreadMethod", "clip-path", "clip-rule", "mask", "filter", "font-family", "font-size",
    "font-weight", "font-style", "text-anchor", "dominant-baseline", "letter-spacing",
    "preserveAspectRatio", "version", "dx", "dy", "rotate", "textLength", "patternUnits",
    "patternTransform", "maskUnits", "clipPathUnits", "filterUnits", "stdDeviation", "in",
    "in2", "result", "mode", "values", "type", "operator", "flood-color", "flood-opacity",
    "visibility", "display", "color", "style",
}  # fmt: skip
HREF_OK = re.compile(r"^(#[\w.-]+|data:image/(png|jpeg);base64,[A-Za-z0-9+/=\s]+)$")
# url() may only point inside the image (`url(#gradient)`), in attributes and in styles.
URL = re.compile(r"url\s*\(\s*(['\"]?)(.*?)\1\s*\)", re.I | re.S)
LOCAL_URL = re.compile(r"^#[\w.-]+$")
# A backslash could spell any of these with CSS escapes (`@\69mport`), so it goes too.
STYLE_BAD = re.compile(r"@import|expression\s*\(|javascript:|behavior|-moz-binding|\\", re.I)


@dataclass
class CleanedSvg:
    """An SVG image rebuilt from what is safe, and what was taken out (for the admin)."""

    data: bytes
    removed: list[str] = field(default_factory=list)


def _local(name: str) -> str:
    return etree.QName(name).localname if name.startswith("{") else name


def _loads_something(value: str, *, style: bool) -> bool:
    """A value that could load or run something: any url() but a local one, and in styles
    imports, expressions, behaviours and escapes."""
    if style and STYLE_BAD.search(value):
        return True
    targets = [match.group(2).strip() for match in URL.finditer(value)]
    # A `url(` the pattern did not take apart (unclosed, say) counts as foreign.
    if len(targets) != len(re.findall(r"url\s*\(", value, re.I)):
        return True
    return any(not LOCAL_URL.match(target) for target in targets)


def _drop(element) -> None:
    """Take an element out, keeping the text that followed it (lxml removes it with it)."""
    parent = element.getparent()
    if parent is None:
        return
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def clean_svg(data: bytes) -> CleanedSvg:
    """The safe part of an SVG image and what was removed; InvalidInput when it is not one."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True,
        remove_pis=True, load_dtd=False, dtd_validation=False,
    )  # fmt: skip
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidInput(f"The SVG file does not parse: {exc.msg}.") from None
    except (etree.LxmlError, ValueError) as exc:
        raise InvalidInput(f"The SVG file does not parse ({type(exc).__name__}).") from None
    if not isinstance(root.tag, str) or root.tag != f"{{{SVG_NS}}}svg":
        raise InvalidInput(
            f'The file is not an SVG image: its root must be <svg xmlns="{SVG_NS}">.'
        )
    removed: set[str] = set()
    if root.getroottree().docinfo.internalDTD is not None:
        removed.add("the DOCTYPE and its entities")
    # Depth first, without descending into what is dropped (its content goes with it).
    pending = [root]
    while pending:
        element = pending.pop()
        if not isinstance(element.tag, str):  # an entity reference left unresolved
            removed.add("entity references")
            _drop(element)
            continue
        local = _local(element.tag)
        if etree.QName(element).namespace != SVG_NS or local not in ELEMENTS:
            removed.add(f"<{local}>")
            _drop(element)
            continue
        if local == "style" and _loads_something(element.text or "", style=True):
            removed.add("a <style> that loads or runs something")
            element.text = ""
        for name, value in list(element.attrib.items()):
            attribute = _local(name)
            namespace = etree.QName(name).namespace if name.startswith("{") else None
            if attribute == "href" and namespace in (None, XLINK_NS):
                if not HREF_OK.match(value.strip()):
                    removed.add("links outside the image")
                    del element.attrib[name]
            elif namespace is not None or attribute not in ATTRIBUTES:
                removed.add(
                    "event handlers (on…)"
                    if attribute.lower().startswith("on")
                    else f"the attribute {attribute}"
                )
                del element.attrib[name]
            elif _loads_something(value, style=attribute == "style"):
                removed.add(f"a {attribute} that loads or runs something")
                del element.attrib[name]
        pending.extend(reversed(element))
    return CleanedSvg(
        data=etree.tostring(root, xml_declaration=False, encoding="utf-8"),
        removed=sorted(removed),
    )
