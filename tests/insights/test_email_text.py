"""The new part of an email: quoted history and signatures removed, in the formats clients really send."""

from __future__ import annotations

import pytest

from shared.insights.email_text import appointment_text, email_new_text, strip_quoted_and_signature
from shared.insights.html_text import html_to_text
from shared.insights.models import BodyType

NEW = "The invoice is wrong again and I need it fixed today."
OLD = "OLDTEXT we are thrilled with the great partnership"

PLAIN_CASES = {
    "gmail_attribution": f"{NEW}\n\nOn Mon, Jun 3, 2024 at 10:00 AM Sam Carter <sam@contoso.example> wrote:\n> {OLD}\n",
    "gmail_wrapped_attribution": f"{NEW}\n\nOn Mon, Jun 3, 2024 at 10:00 AM Sam Carter <sam@contoso.example>\nwrote:\n\n> {OLD}\n",
    "apple_mail": f"{NEW}\n\n> On 3 Jun 2024, at 10:00, Sam Carter <sam@contoso.example> wrote:\n>\n> {OLD}\n",
    "outlook_original_message": f"{NEW}\n\n-----Original Message-----\nFrom: Sam Carter\nSent: Monday, June 3, 2024 10:00 AM\nTo: Dana\nSubject: RE: x\n\n{OLD}\n",
    "outlook_header_block": f"{NEW}\n\n________________________________\nFrom: Sam Carter <sam@contoso.example>\nSent: Monday, June 3, 2024 10:00 AM\nTo: Dana Whitfield <dana@fabrikam.example>\nSubject: RE: Renewal\n\n{OLD}\n",
    "outlook_header_block_no_rule": f"{NEW}\n\nFrom: Sam Carter <sam@contoso.example>\nDate: Monday, June 3, 2024 at 10:00\nTo: Dana\nSubject: Renewal\n\n{OLD}\n",
    "outlook_bold_markdown": f"{NEW}\n\n*From:* Sam Carter\n*Sent:* Monday, June 3, 2024 10:00 AM\n*To:* Dana\n*Subject:* Renewal\n\n{OLD}\n",
    "german_outlook": f"{NEW}\n\nVon: Sam Carter\nGesendet: Montag, 3. Juni 2024 10:00\nAn: Dana\nBetreff: AW: Angebot\n\n{OLD}\n",
    "german_attribution": f"{NEW}\n\nAm 03.06.2024 um 10:00 schrieb Sam Carter <sam@contoso.example>:\n> {OLD}\n",
    "french_attribution": f"{NEW}\n\nLe lun. 3 juin 2024 à 10:00, Sam Carter <sam@contoso.example> a écrit :\n> {OLD}\n",
    "forwarded": f"{NEW}\n\n---------- Forwarded message ---------\nFrom: Sam <sam@contoso.example>\nDate: Mon, Jun 3, 2024\n\n{OLD}\n",
    "apple_forward": f"{NEW}\n\nBegin forwarded message:\n\nFrom: Sam <sam@contoso.example>\n\n{OLD}\n",
    "bare_quote_lines": f"{NEW}\n\n> {OLD}\n> more old\n",
    "lotus_notes": f"{NEW}\n\n-----Sam Carter <sam@contoso.example> wrote: -----\nTo: Dana\n{OLD}\n",
    "helpdesk_marker": f"{NEW}\n\n##- Please type your reply above this line -##\n\nSam Carter (Contoso)\n{OLD}\n",
    "outlook_mailto": f"{NEW}\n\nFrom: Sam Carter [mailto:sam@contoso.example]\nSent: Monday, June 3, 2024 10:00 AM\nTo: Dana\nSubject: x\n\n{OLD}\n",
}


@pytest.mark.parametrize("name", sorted(PLAIN_CASES))
def test_quoted_history_removed_plain(name: str) -> None:
    out = strip_quoted_and_signature(PLAIN_CASES[name])
    assert NEW in out
    assert "OLDTEXT" not in out
    assert "Sam Carter" not in out


def test_interleaved_quoting_keeps_the_answers() -> None:
    text = "> Can you do Tuesday?\nYes, Tuesday works.\n\n> And the price?\nThe price is too high for us.\n"
    out = strip_quoted_and_signature(text)
    assert "Yes, Tuesday works." in out and "The price is too high for us." in out
    assert "Can you do Tuesday" not in out


SIGNATURES = {
    "rfc_delimiter": f"{NEW}\n\n-- \nDana Whitfield\nFabrikam Ltd\n",
    "delimiter_trailing_space_stripped": f"{NEW}\n\n--\nDana Whitfield | Head of Procurement\n",
    "iphone": f"{NEW}\n\nSent from my iPhone",
    "outlook_mobile": f"{NEW}\n\nGet Outlook for Android",
    "best_regards_block": f"{NEW}\n\nBest regards,\nDana Whitfield\nHead of Procurement | Fabrikam Ltd\n+44 20 7946 0018\nwww.fabrikam.example",
    "kind_regards_short": f"{NEW}\n\nKind regards\nDana",
    "thanks_name": f"{NEW}\n\nThanks,\nDana",
    "cheers_dash_name": f"{NEW}\n\nCheers - Dana",
    "german_signoff": f"{NEW}\n\nMit freundlichen Grüßen\nDana Whitfield\nTel. +49 30 1234567",
    "disclaimer": f"{NEW}\n\nDana\n\nThis email and any attachments are confidential and intended solely for the addressee. "
    "If you received it in error, please delete it.",
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signatures_removed(name: str) -> None:
    out = strip_quoted_and_signature(SIGNATURES[name])
    assert out == NEW


def test_bottom_posted_reply_is_kept() -> None:
    text = "On Mon, Jun 3, 2024 at 10:00 AM Sam <sam@contoso.example> wrote:\n> Can you do Tuesday?\n> Thanks\n\n" \
        "Yes, Tuesday works, but the price is too high.\n\nBest regards, Dana"
    assert strip_quoted_and_signature(text) == "Yes, Tuesday works, but the price is too high."


@pytest.mark.parametrize("closing", ["Thanks, Dana", "Best regards, Dana Whitfield", "Cheers,\nDana", "Regards\n\nDana W."])
def test_sign_off_with_name_on_one_or_two_lines(closing: str) -> None:
    assert strip_quoted_and_signature(f"{NEW}\n\n{closing}") == NEW


def test_courtesy_sentence_is_not_a_sign_off() -> None:
    text = "Thanks for the quick response.\nCall me when you can."
    assert strip_quoted_and_signature(text) == text


def test_sign_off_word_inside_prose_is_kept() -> None:
    # "Thanks," opening a paragraph of prose is not a signature
    text = "Thanks,\n\nI looked at the proposal and it is far too expensive for our team this year.\nCan you do better?"
    out = strip_quoted_and_signature(text)
    assert "far too expensive" in out and "Can you do better?" in out


def test_signature_then_quote_both_removed() -> None:
    text = f"{NEW}\n\nBest,\nDana\n+1 555 0100\n\nOn Tue, Jun 4, 2024 at 9:00 AM Sam wrote:\n> {OLD}"
    assert strip_quoted_and_signature(text) == NEW


HTML_CASES = {
    "gmail_quote": f'<div dir="ltr">{NEW}</div><br><div class="gmail_quote"><div class="gmail_attr">On Mon Sam wrote:</div>'
    f'<blockquote class="gmail_quote">{OLD}</blockquote></div>',
    "gmail_signature": f'<div>{NEW}</div><div><br></div>-- <br><div dir="ltr" class="gmail_signature" '
    'data-smartmail="gmail_signature">Dana Whitfield<br>Fabrikam</div>',
    "outlook_divrplyfwdmsg": f'<div>{NEW}</div><div id="Signature"><p>Dana Whitfield</p></div><hr style="display:inline-block">'
    f'<div id="divRplyFwdMsg" dir="ltr"><b>From:</b> Sam Carter<br><b>Sent:</b> Monday</div><div>{OLD}</div>',
    "outlook_appendonsend": f'<p>{NEW}</p><div id="appendonsend"></div><p>{OLD}</p>',
    "outlook_desktop_border": f'<div class="WordSection1"><p class="MsoNormal">{NEW}<o:p></o:p></p>'
    '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in">'
    '<p class="MsoNormal"><b>From:</b> Sam Carter &lt;sam@contoso.example&gt;<br><b>Sent:</b> Monday, June 3, 2024 10:00 AM<br>'
    f"<b>To:</b> Dana<br><b>Subject:</b> RE: Renewal</p></div><p class=MsoNormal>{OLD}</p></div>",
    "thunderbird": f'<p>{NEW}</p><div class="moz-cite-prefix">On 03/06/2024 10:00, Sam wrote:<br></div>'
    f'<blockquote type="cite">{OLD}</blockquote><pre class="moz-signature" cols="72">-- \nDana</pre>',
    "yahoo": f'<div>{NEW}</div><div class="yahoo_quoted"><div>On Monday, Sam wrote:</div><div>{OLD}</div></div>',
    "plain_blockquote_nested": f"<p>{NEW}</p><blockquote><p>{OLD}</p><blockquote><p>{OLD}</p></blockquote><p>{OLD}</p></blockquote>",
    "outlook_mobile_signature": f'<div>{NEW}</div><div id="ms-outlook-mobile-signature">Get Outlook for iOS</div>',
}


@pytest.mark.parametrize("name", sorted(HTML_CASES))
def test_quoted_history_and_signature_removed_html(name: str) -> None:
    out = email_new_text(HTML_CASES[name], BodyType.HTML)
    assert NEW in out
    assert "OLDTEXT" not in out
    assert "Dana Whitfield" not in out and "Sam Carter" not in out


def test_html_entities_scripts_and_styles() -> None:
    html = "<html><head><style>p{color:red}</style><title>t</title></head><body><script>var x=1;</script>" \
        "<p>Price &amp; terms&nbsp;look good &#8212; thanks</p><ul><li>one</li><li>two</li></ul></body></html>"
    text, truncated = html_to_text(html)
    assert "Price & terms look good — thanks" in text
    assert "- one" in text and "- two" in text
    assert "color" not in text and "var x" not in text and not truncated


def test_html_char_cap_and_deep_nesting() -> None:
    text, truncated = html_to_text("<div>" * 50_000 + "deep text" + "</div>" * 50_000)
    assert text == "deep text" and not truncated
    text, truncated = html_to_text("<p>abc</p>" * 10_000, max_chars=100)
    assert truncated and len(text) <= 100


def test_appointment_body_drops_teams_boilerplate() -> None:
    html = (
        "<p>Agenda: review the renewal terms and the open escalation.</p>"
        "<div>________________________________________________________________________________</div>"
        "<div><b>Microsoft Teams meeting</b></div><div>Join on your computer, mobile app or room device</div>"
        "<div>Meeting ID: 123 456 789</div><div>Passcode: abc</div>"
    )
    out = appointment_text(html, BodyType.HTML)
    assert out == "Agenda: review the renewal terms and the open escalation."


def test_plain_body_without_history_is_unchanged() -> None:
    text = "Hi Sam,\n\nCould you send the updated price list?\n\nIt would help us a lot."
    assert strip_quoted_and_signature(text) == text


@pytest.mark.parametrize(
    "body",
    [
        "\n" * 300_000,
        "Thanks,\n" + "Dana\n" * 50_000,
        "On Mon Sam wrote:\n> x\n" * 30_000,
        "> a\n" * 100_000 + "hi",
    ],
    ids=["newlines", "sign-offs", "attributions", "quotes"],
)
@pytest.mark.timeout(120)  # a hang guard, not a stopwatch: the quadratic paths took many minutes here
def test_pathological_bodies_are_read(body: str) -> None:
    out = email_new_text(body, BodyType.TEXT)
    assert len(out) <= len(body)
