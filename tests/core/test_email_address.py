"""One canonical form for email addresses, internationalised ones included (RFC 6531/6532, IDNA)."""

from __future__ import annotations

import pytest
from django import forms
from hypothesis import given
from hypothesis import strategies as st
from rest_framework import serializers

from servicedesk.core.api_fields import EmailAddressSerializerField
from servicedesk.core.email_address import (
    EmailAddressFormField,
    InvalidEmailAddress,
    domain_to_ascii,
    email_key,
    email_normalize,
    email_search_term,
    validate_email_address,
)

ONE_AT = "Enter an email address with one @, such as name@example.com."
BAD_LOCAL = "The part before the @ contains a space or a character not allowed there."
BAD_DOMAIN = "The domain after the @ is not a valid domain name."


@pytest.mark.parametrize(
    ("given_address", "canonical"),
    [
        ("alice@example.com", "alice@example.com"),
        ("  Alice.Byrne+desk@Example.COM ", "alice.byrne+desk@example.com"),
        ("josé@bücher.example", "josé@bücher.example"),
        ("JOSÉ@BÜCHER.EXAMPLE", "josé@bücher.example"),
        # The A-label (as a mail server or an old client writes it) is the same domain.
        ("user@xn--bcher-kva.example", "user@bücher.example"),
        ("user@XN--BCHER-KVA.Example", "user@bücher.example"),
        # One mailbox name whatever the Unicode composition: é, or e and a combining accent.
        ("jose\u0301@example.com", "josé@example.com"),
        ("用户@例子.广告", "用户@例子.广告"),
        ("用户@xn--fsqu00a.xn--4rr70v", "用户@例子.广告"),
        ("δοκιμή@παράδειγμα.δοκιμή", "δοκιμή@παράδειγμα.δοκιμή"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("a@b.co", "a@b.co"),
        # Over RFC 5321's 64 bytes, as generated list and bounce addresses are: taken as before.
        ("bounces+" + "x" * 70 + "@lists.example", "bounces+" + "x" * 70 + "@lists.example"),
    ],
)
def test_addresses_take_one_canonical_form(given_address: str, canonical: str) -> None:
    assert email_normalize(given_address) == canonical


@pytest.mark.parametrize(
    ("given_address", "message"),
    [
        ("", "Enter an email address."),
        ("   ", "Enter an email address."),
        ("jane.example.com", ONE_AT),
        ("jane@", ONE_AT),
        ("@example.com", ONE_AT),
        ("jane@@example.com", ONE_AT),
        ("jane@[192.0.2.1]", ONE_AT),
        ("jo sé@example.com", BAD_LOCAL),
        ("jose\x00@example.com", BAD_LOCAL),
        ("jose\x07@example.com", BAD_LOCAL),
        ("jose\u202e@example.com", BAD_LOCAL),  # a bidirectional override
        ("jose\u00a0x@example.com", BAD_LOCAL),  # a no-break space
        ("jose\udcc3@example.com", BAD_LOCAL),  # a lone surrogate (undecodable mail bytes)
        ("jose<x>@example.com", BAD_LOCAL),
        ('"jo sé"@example.com', "Quoted mailbox names are not accepted; write the address without quotes."),
        (".jose@example.com", "The part before the @ cannot begin or end with a dot or have two in a row."),
        ("jo..se@example.com", "The part before the @ cannot begin or end with a dot or have two in a row."),
        ("jose@localhost", "The domain after the @ needs a dot, as in example.com."),
        ("jose@exa mple.com", BAD_DOMAIN),
        ("jose@example..com", BAD_DOMAIN),
        ("jose@example.com.", BAD_DOMAIN),
        ("jose@-example.com", BAD_DOMAIN),
        ("jose@example_1.com", BAD_DOMAIN),
        ("jose@example.123", BAD_DOMAIN),
        ("jose@xn--zz.example", BAD_DOMAIN),  # not Punycode
        ("jose@xn--strae-oqa.de", BAD_DOMAIN),  # IDNA 2008 only: the SMTP path could not send to it
        ("jose@bü\u202echer.example", BAD_DOMAIN),
        ("jose@" + "ü" * 70 + ".example", BAD_DOMAIN),  # a label over 63 letters
        ("a@" + "b" * 330 + ".com", "The email address is too long."),
    ],
)
def test_garbage_is_refused_with_the_reason(given_address: str, message: str) -> None:
    with pytest.raises(InvalidEmailAddress) as excinfo:
        email_normalize(given_address)
    assert excinfo.value.message == message


def test_domain_to_ascii_gives_the_form_smtp_writes() -> None:
    assert domain_to_ascii("Bücher.Example") == "xn--bcher-kva.example"
    assert domain_to_ascii("xn--bcher-kva.example") == "xn--bcher-kva.example"


def test_email_key_matches_the_forms_a_mail_server_and_the_desk_write() -> None:
    assert email_key("User@xn--bcher-kva.example") == email_key("user@bücher.example") == "user@bücher.example"
    assert email_key(" Not An Address ") == "not an address"


@pytest.mark.parametrize(
    ("term", "looked_for"),
    [
        (" Bob@Example ", "bob@example"),
        ("xn--bcher-kva", "bücher"),
        ("JOSÉ@XN--BCHER-KVA.example", "josé@bücher.example"),
        ("jose\u0301@", "josé@"),
        ("xn--zz.example", "xn--zz.example"),  # not Punycode: searched for as typed
    ],
)
def test_search_terms_are_read_as_addresses_are_stored(term: str, looked_for: str) -> None:
    assert email_search_term(term) == looked_for


LOCAL_CHARS = st.sampled_from(list("abcXYZ019.+-_'ÉéèßİıΣσςЖж用户\u0301\u0308"))
LABEL_CHARS = st.sampled_from(list("abcXYZ019-ÜüéßΣσЖж例子"))
TLDS = st.sampled_from(["com", "Example", "广告", "XN--P1AI", "рф", "δοκιμή"])


@st.composite
def addresses(draw: st.DrawFn) -> str:
    local = draw(st.text(LOCAL_CHARS, min_size=1, max_size=20))
    labels = draw(st.lists(st.text(LABEL_CHARS, min_size=1, max_size=12), min_size=1, max_size=3))
    return f"{local}@{'.'.join(labels)}.{draw(TLDS)}"


@given(addresses())
def test_normalising_is_idempotent(address: str) -> None:
    try:
        canonical = email_normalize(address)
    except InvalidEmailAddress:
        return
    assert email_normalize(canonical) == canonical


@given(st.text(max_size=80))
def test_any_text_is_an_address_or_a_clear_refusal(text: str) -> None:
    try:
        canonical = email_normalize(text)
    except InvalidEmailAddress as exc:
        assert exc.message
        return
    assert email_normalize(canonical) == canonical


def test_normalising_accepts_most_generated_addresses() -> None:
    """The property above would prove little if every generated address were refused."""
    assert email_normalize("Éé.ß+用户@Üü-ж.例子.XN--P1AI") == "éé.ß+用户@üü-ж.例子.рф"


class AddressForm(forms.Form):
    email = EmailAddressFormField()


class AddressSerializer(serializers.Serializer):
    email = EmailAddressSerializerField()


def test_the_form_field_cleans_to_the_canonical_form_and_names_the_fault() -> None:
    good = AddressForm(data={"email": "José@XN--BCHER-KVA.example"})
    bad = AddressForm(data={"email": "jo sé@example.com"})

    assert good.is_valid() and good.cleaned_data == {"email": "josé@bücher.example"}
    assert not bad.is_valid() and bad.errors == {"email": [BAD_LOCAL]}
    # Not type="email": browsers refuse a non-ASCII mailbox name in such a field.
    assert 'type="text"' in str(good["email"]) and 'inputmode="email"' in str(good["email"])


def test_the_serializer_field_cleans_to_the_canonical_form_and_names_the_fault() -> None:
    good = AddressSerializer(data={"email": "José@XN--BCHER-KVA.example"})
    bad = AddressSerializer(data={"email": "jose@example..com"})

    assert good.is_valid() and good.validated_data == {"email": "josé@bücher.example"}
    assert not bad.is_valid() and bad.errors == {"email": [BAD_DOMAIN]}


def test_the_validator_raises_a_django_validation_error() -> None:
    validate_email_address("josé@bücher.example")
    with pytest.raises(forms.ValidationError) as excinfo:
        validate_email_address("josé")
    assert excinfo.value.messages == [ONE_AT]
