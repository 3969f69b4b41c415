"""SOAP envelope, namespaces and the error shapes of Exchange Web Services.

Real Exchange answers a request-level failure (bad auth context, impersonation refused, throttling,
schema errors) with an HTTP 500 carrying a SOAP Fault whose detail names the EWS ResponseCode, and
an item-level failure inside a ResponseMessage with ResponseClass="Error" (HTTP 200).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
ERR = "http://schemas.microsoft.com/exchange/services/2006/errors"
NSMAP = {"s": SOAP, "m": M, "t": T}

# Exchange Server 2019 CU14 as it reports itself (ServerVersionInfo header); 2016 and 2019 both
# announce the V2017_07_11 schema.
SERVER_VERSION = {"MajorVersion": "15", "MinorVersion": "2", "MajorBuildNumber": "1544",
                  "MinorBuildNumber": "4", "Version": "V2017_07_11"}


def t(tag: str) -> str:
    return f"{{{T}}}{tag}"


def m(tag: str) -> str:
    return f"{{{M}}}{tag}"


def local(el: etree._Element) -> str:
    return etree.QName(el).localname


def sub(parent: etree._Element, tag: str, text: Any = None, **attrs: Any) -> etree._Element:
    el = etree.SubElement(parent, tag, {k: str(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text if isinstance(text, str) else str(text).lower() if isinstance(text, bool) else str(text)
    return el


class EwsFault(Exception):
    """A request-level error: HTTP 500 with a SOAP Fault (or 401/503 where Exchange answers so)."""

    def __init__(self, code: str, message: str, *, status: int = 500,
                 values: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.values = values or {}


class ItemError(Exception):
    """An error of one element of a request: a ResponseMessage with ResponseClass="Error"."""

    def __init__(self, code: str, message: str, *, values: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.values = values or {}


def envelope(body_child: etree._Element | None = None) -> tuple[etree._Element, etree._Element]:
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap=NSMAP)
    header = sub(env, f"{{{SOAP}}}Header")
    etree.SubElement(header, t("ServerVersionInfo"), SERVER_VERSION)
    body = sub(env, f"{{{SOAP}}}Body")
    if body_child is not None:
        body.append(body_child)
    return env, body


def fault_xml(fault: EwsFault) -> bytes:
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
    body = sub(env, f"{{{SOAP}}}Body")
    f = sub(body, f"{{{SOAP}}}Fault")
    code = etree.SubElement(f, "faultcode", nsmap={"a": T})
    code.text = f"a:{fault.code}"
    sub(f, "faultstring", fault.message).set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    detail = sub(f, "detail")
    etree.SubElement(detail, f"{{{ERR}}}ResponseCode", nsmap={"e": ERR}).text = fault.code
    etree.SubElement(detail, f"{{{ERR}}}Message", nsmap={"e": ERR}).text = fault.message
    if fault.values:
        mx = etree.SubElement(detail, t("MessageXml"), nsmap={"t": T})
        for name, value in fault.values.items():
            sub(mx, t("Value"), value, Name=name)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def response_message(parent: etree._Element, op: str, error: ItemError | None = None) -> etree._Element:
    """`<m:{op}ResponseMessage ResponseClass=…><m:ResponseCode>…` under `parent`."""
    rm = sub(parent, m(f"{op}ResponseMessage"), ResponseClass="Error" if error else "Success")
    if error is not None:
        sub(rm, m("MessageText"), error.message)
        sub(rm, m("ResponseCode"), error.code)
        sub(rm, m("DescriptiveLinkKey"), "0")
        if error.values:
            mx = sub(rm, m("MessageXml"))
            for name, value in error.values.items():
                sub(mx, t("Value"), value, Name=name)
    else:
        sub(rm, m("ResponseCode"), "NoError")
    return rm


def to_bytes(env: etree._Element) -> bytes:
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True)


def parse(body: bytes) -> etree._Element:
    try:
        return etree.fromstring(body, PARSER)
    except etree.XMLSyntaxError as exc:
        raise EwsFault("ErrorSchemaValidation", f"The request failed schema validation: {exc}") from None
