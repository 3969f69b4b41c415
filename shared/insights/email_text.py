"""The new part of an email: what the sender wrote now, without quoted history and signature.

Sentiment of a reply must not be the sentiment of the thread it quotes, nor of the sender's
"Best regards" and disclaimer. Graph's ``uniqueBody`` already drops most history when the sync
selects it; these heuristics still run because uniqueBody is absent for some items and misses
plain-text quoting. Everything here is line-based and linear in the input.
"""

from __future__ import annotations

import re

from shared.insights.html_text import html_to_text, normalise_whitespace
from shared.insights.models import BodyType

# --- quoted history -----------------------------------------------------------------------------
# "On Mon, 3 Jun 2024 at 10:00, Dana <dana@x>wrote:" (Gmail, Apple Mail) and its forms in other languages;
# checked on one line and on two joined lines (Gmail wraps long attribution lines).
_WROTE = (
    r"wrote|writes|schrieb|schreibt|a\s+écrit|escribió|escribio|escreveu|schreef|ha\s+scritto|scrisse"
    r"|написал\(?а?\)?|написала|пише|napisał\(?a?\)?|napisała|skrev|skriver|kirjoitti|έγραψε|كتب(?:/كتبت)?"
    r"|写道|寫道|írta|napsal\(?a?\)?|yazdı|kirjutas|rašė|rakstīja|pisze|scrie|a\s+scris"
)
_ATTRIBUTION = re.compile(
    r"^\s*(?:"
    r"On\b.{0,300}\bwrote\s*:"
    r"|Am\b.{0,300}\bschrieb\b.{0,100}:"
    r"|Le\b.{0,300}\ba\s+écrit\s*:"
    r"|El\b.{0,300}\bescribió\s*:"
    r"|Op\b.{0,300}\bschreef\b.{0,100}:"
    r"|Il\b.{0,300}\bha\s+scritto\s*:"
    r"|.{0,300}(?<!\w)(?:" + _WROTE + r")(?!\w).{0,120}:"  # any language: "<date> <name> <address> <verb>:"
    r"|Wiadomość\s+napisana\s+przez\b.{0,300}:"
    r")\s*$",
    re.IGNORECASE,
)
# "2017-11-24 16:32 GMT+01:00 Baptiste <b@x.y>:", "30.09.2017, 18.30, "John" <j@x.y>:" — a date or time and an
# address, ending in a colon, with no verb at all (some mobile clients)
_BARE_ATTRIBUTION = re.compile(
    r"^\s*(?=.{0,300}(?:\b\d{1,2}[:.]\d{2}\b|\b(?:19|20)\d{2}\b))(?=.{0,300}[\w.+-]+@[\w-]+\.[\w.-]+).{0,400}:\s*$"
)
_SEPARATOR = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:Original\s+Message|Ursprüngliche\s+Nachricht|Message\s+d'origine|Mensaje\s+original|Forwarded\s+message)\s*-{2,}"
    r"|-{2,}\s*[^\W\d_]+(?:\s+[^\W\d_]+){0,3}\s*-{2,}"  # "-------- Oprindelig besked --------" in any language
    r"|={3,}\s*[^\W\d_]+(?:\s+[^\W\d_]+){0,2}\s*:.{0,100}"  # "==== Message du : 12/12/2016 13:20"
    r"|Begin\s+forwarded\s+message\s*:"
    r"|-{3,}.{1,200}\bwrote\s*:?\s*-{3,}"  # Lotus Notes: "-----Sam Carter <sam@…> wrote: -----"
    r"|.{0,40}(?:reply|write)\s+above\s+this\s+line.{0,40}"  # helpdesk reply markers
    r"|_{10,}"  # Outlook's line above the From:/Sent: block
    r"|-{10,}"  # the same rule in plain-text Outlook/Hotmail
    r")\s*$",
    re.IGNORECASE,
)
# Outlook / Hotmail / Outlook 2003 header block: "From:" then at least two of Sent/Date/To/Subject, in many languages
_FROM_WORDS = (r"From|Von|De|Van|Da|Fra|Från|Od|Nadawca|От|Від|Lähettäjä|Kimden|Από|Feladó|Odesílatel|送信者|发件人|寄件者"
               r"|差出人|Afzender|Remitente|Expéditeur")
_OTHER_WORDS = (
    r"Sent|Date|To|Subject|Cc|Gesendet|Datum|An|Betreff|Kopie|Envoyé|Objet|À|A|Copie\s+à|Sujet|Enviado|Asunto|Para|Assunto"
    r"|Inviato|Oggetto|Verzonden|Aan|Onderwerp|Skickat|Till|Ämne|Sendt|Til|Emne|Dato|Wysłano|Do|Temat|Data|Adresat"
    r"|Отправлено|Дата|Кому|Тема|Надіслано|Lähetetty|Vastaanottaja|Aihe|Gönderildi|Kime|Konu|Στάλθηκε|Προς|Θέμα"
    r"|Elküldve|Címzett|Tárgy|Odesláno|Komu|Předmět|送信日時|宛先|件名|发送时间|收件人|主题|Verstuurd"
)
_HDR_FROM = re.compile(r"^\s*\**(?:" + _FROM_WORDS + r")\s*:\**\s*\S", re.IGNORECASE)
_HDR_OTHER = re.compile(r"^\s*\**(?:" + _OTHER_WORDS + r")\s*:\**", re.IGNORECASE)
_QUOTED_LINE = re.compile(r"^\s*>")

# --- signatures ---------------------------------------------------------------------------------
_SIG_DELIMITER = re.compile(r"^--\s*$|^—\s*$|^__\s*$")
_DEVICE = (r"iPhone|iPad|Android|mobile|Mobil\w*|Samsung|Galaxy|BlackBerry|Mail\s+for\s+Windows|Outlook|Yahoo\s+Mail"
           r"|Mail\s+App|iOS|smartphone|телефона|iPhone'a|الـ\s+iPhone")
_MOBILE_FOOTER = re.compile(
    r"^\W{0,3}(?:Sent\s+from\s+(?:my\s+)?(?:iPhone|iPad|Android|mobile|Samsung|Galaxy|BlackBerry|Mail\s+for\s+Windows|Outlook|Yahoo\s+Mail)\b.*"
    r"|Get\s+Outlook\s+for\s+(?:iOS|Android)\b.*"
    r"|Sent\s+(?:via|with|using|from)\s+.{1,60}"
    r"|(?=.{0,60}$)(?:\S+\s+){0,5}\S*(?:iPhone|iPad|Android|BlackBerry)\S*(?:\s+\S+){0,5}"  # "Az iPhone-omról küldve"
    # the same footer in other languages: "Gesendet von …", "Envoyé à partir de …", "Sendt fra min iPad", …
    r"|(?:Gesendet|Von\s+meinem|Envoyé|Enviado|Inviato|Verzonden|Skickat|Sendt|Wysłane|Wysłano|Отправлено|Надіслано"
    r"|Lähetetty|Odesláno|Gönderildi|Elküldve|Enviada|أُرسلت|Διαβιβάστηκε|Στάλθηκε)\b.{0,50}(?:" + _DEVICE + r").{0,30})$",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^\s*(?:(?:best|kind|warm|warmest|many|with\s+kind|yours)\s+(?:regards|wishes|thanks)"
    r"|regards|best|cheers|thanks(?:\s+(?:again|a\s+lot|so\s+much|in\s+advance))?|thank\s+you(?:\s+(?:again|in\s+advance))?"
    r"|many\s+thanks|sincerely(?:\s+yours)?|yours\s+(?:sincerely|truly|faithfully)|all\s+the\s+best|talk\s+soon"
    r"|br|thx|cordially|respectfully|best\s+regards|kind\s+regards|mit\s+freundlichen\s+grüßen|viele\s+grüße"
    r"|cordialement|saludos|un\s+saludo)\s*[,.!]*\s*(?:[-–—,]?\s*(?-i:[A-Z][\w.'’-]*(?:\s+[A-Z][\w.'’-]*){0,2}))?\s*$",
    re.IGNORECASE,
)
_DISCLAIMER = re.compile(
    r"(?:intended\s+(?:solely\s+)?for\s+the\s+(?:use\s+of\s+the\s+)?(?:addressee|recipient|individual)"
    r"|this\s+(?:e-?mail|message)\s+(?:and\s+any\s+attachments\s+)?(?:is|are|may\s+be)\s+(?:strictly\s+)?(?:confidential|privileged)"
    r"|confidentiality\s+notice|disclaimer\s*:|please\s+consider\s+the\s+environment\s+before\s+printing)",
    re.IGNORECASE,
)
_CONTACTISH = re.compile(
    r"(?:\+?\d[\d ()./-]{6,}\d|@[\w-]+\.[\w.-]+|https?://|www\.|\b(?:tel|phone|mobile|mob|fax|direct|cell|m|t|p)\s*[:.]\s*\+?\d)",
    re.IGNORECASE,
)
_MAX_SIGNATURE_LINES = 12


def _is_signature_line(line: str) -> bool:
    s = line.strip()
    if not s:
        return True
    if _CONTACTISH.search(s):
        return True
    if len(s) > 80 or "?" in s:
        return False
    words = s.split()
    # Prose: a real sentence (several words, ends like one). Names, titles and company lines are short.
    return not (len(words) >= 6 and s[-1] in ".!")


def _find_history_start(lines: list[str]) -> int:
    """Index of the first line of quoted history (len(lines) when there is none)."""
    n = len(lines)
    for i, line in enumerate(lines):
        if _SEPARATOR.match(line):
            # an underscore rule alone is only a separator when a header block follows
            if line.strip().startswith("_") and not any(_HDR_FROM.match(x) for x in lines[i + 1 : i + 3]):
                continue
            return i
        if _is_attribution(lines, i):
            return i
        if _HDR_FROM.match(line):
            following = lines[i + 1 : i + 7]
            if sum(1 for x in following if _HDR_OTHER.match(x)) >= 2:
                return i
    return n


def _find_signature_start(lines: list[str]) -> int:
    n = len(lines)
    for i, line in enumerate(lines):
        if _SIG_DELIMITER.match(line) or _MOBILE_FOOTER.match(line):
            return i
        if _DISCLAIMER.search(line):
            # the disclaimer paragraph starts at the previous blank line
            j = i
            while j > 0 and lines[j - 1].strip():
                j -= 1
            return j
    # A sign-off line near the end, followed only by name/title/contact lines. Only the tail can
    # hold one (at most _MAX_SIGNATURE_LINES non-blank lines after it): linear in the body.
    start, seen = n, 0
    while start > 0 and seen <= _MAX_SIGNATURE_LINES:
        start -= 1
        if lines[start].strip():
            seen += 1
    for i in range(start, n):
        line = lines[i]
        if not _SIGN_OFF.match(line):
            continue
        rest = [x for x in lines[i + 1 :] if x.strip()]
        if len(rest) <= _MAX_SIGNATURE_LINES and all(_is_signature_line(x) for x in rest):
            return i
    return n


def _attribution_line(line: str) -> bool:
    # every attribution ends with a colon: a cheap test first keeps long bodies linear and fast
    tail = line.rstrip()
    return tail.endswith(":") and len(line) <= 500 and bool(_ATTRIBUTION.match(line) or _BARE_ATTRIBUTION.match(line))


def _is_attribution(lines: list[str], i: int) -> bool:
    line = lines[i]
    if _attribution_line(line):
        return True
    if i + 1 >= len(lines) or not line.strip():
        return False
    # Gmail and others wrap "On <date>, <name> <" / "address>" / "wrote:" over up to three lines; the
    # continuation lines are short and not an attribution themselves
    if len(line) > 300:
        return False
    joined = line.rstrip()
    for nxt in (x.strip() for x in lines[i + 1 : i + 3]):
        if nxt.startswith(">"):
            return False
        if not nxt or len(nxt) > 100 or (len(nxt.split()) > 3 and _attribution_line(nxt)):
            return False
        joined += " " + nxt
        if _attribution_line(joined):
            return True
    return False


def _unwrap_bottom_posting(lines: list[str]) -> list[str]:
    """Blank an "On … wrote:" line whose '>' quote is followed by the sender's own text.

    Bottom-posted and interleaved replies put the new text *after* the quote; cutting at the
    attribution would drop it. The quoted lines themselves are removed later.
    """
    attributions = [i for i in range(len(lines)) if _is_attribution(lines, i)]
    if not attributions:
        return lines
    out = list(lines)
    # each attribution owns the lines up to the next one: linear in the body
    for i, end in zip(attributions, [*attributions[1:], len(lines)], strict=True):
        segment = lines[i + 1 : end]
        last_quoted = max((j for j, x in enumerate(segment) if _QUOTED_LINE.match(x)), default=-1)
        if last_quoted < 0:
            continue
        if any(x.strip() and not _QUOTED_LINE.match(x) for x in segment[last_quoted + 1 :]):
            out[i] = ""
            if i + 1 < len(out) and not _ATTRIBUTION.match(lines[i]):
                out[i + 1] = ""  # the wrapped second half of the attribution
    return out


def strip_quoted_and_signature(text: str) -> str:
    """The new part of a plain-text email body."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = _unwrap_bottom_posting(lines)
    lines = lines[: _find_history_start(lines)]
    lines = [x for x in lines if not _QUOTED_LINE.match(x)]  # interleaved "> " quoting
    lines = lines[: _find_signature_start(lines)]
    lines = _drop_trailing_name(lines)
    return normalise_whitespace("\n".join(lines))


_NAME_LINE = re.compile(r"^\s*[-–—~]?\s*[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*){0,2}\s*$")


def _drop_trailing_name(lines: list[str]) -> list[str]:
    """A bare name ("Dana", "- Dana W.") alone after a blank line at the very end is a signature."""
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    lines = lines[:end]
    if len(lines) >= 3 and _NAME_LINE.match(lines[-1]) and not lines[-2].strip() and len(lines[-1].strip()) <= 30:
        return lines[:-1]
    return lines


_INPUT_FACTOR = 20  # HTML may be mostly markup/CSS; beyond this much input per output char we stop reading


def email_new_text(body: str, body_type: BodyType, *, max_chars: int = 100_000) -> str:
    """New text of an email body (HTML or plain), capped at ``max_chars`` (input at 20x that)."""
    body = body[: max_chars * _INPUT_FACTOR]
    if body_type is BodyType.HTML:
        body, _ = html_to_text(body, strip_quotes=True, max_chars=max_chars * 4)
    return strip_quoted_and_signature(body[: max_chars * 4])[:max_chars]


def appointment_text(body: str, body_type: BodyType, *, max_chars: int = 100_000) -> str:
    """Text of an appointment body: HTML to text, minus the Teams/Zoom join boilerplate and signature."""
    body = body[: max_chars * _INPUT_FACTOR]
    if body_type is BodyType.HTML:
        body, _ = html_to_text(body, strip_quotes=True, max_chars=max_chars * 4)
    lines = body.replace("\r\n", "\n").split("\n")
    cut = len(lines)
    for i, line in enumerate(lines):
        if _MEETING_BOILERPLATE.search(line):
            cut = i
            break
    lines = lines[:cut]
    lines = lines[: _find_signature_start(lines)]
    return normalise_whitespace("\n".join(lines))[:max_chars]


_MEETING_BOILERPLATE = re.compile(
    r"(?:Microsoft\s+Teams\s+(?:meeting|Need\s+help)|Join\s+(?:on\s+your\s+computer|the\s+meeting\s+now|Zoom\s+Meeting)"
    r"|Click\s+here\s+to\s+join\s+the\s+meeting|^_{20,}$|Meeting\s+ID\s*:|Passcode\s*:)",
    re.IGNORECASE,
)
