"""What survives sanitising of customer HTML."""

from servicedesk.core.html import sanitize_html


def test_scripts_events_and_dangerous_urls_go():
    html = (
        '<p onclick="steal()" style="color: red; position: fixed">Hi<script>alert(1)</script></p>'
        '<a href="javascript:alert(1)">x</a><a href="https://example.com/help">help</a><iframe src="https://e.x"></iframe>'
    )
    assert sanitize_html(html) == (
        '<p style="color:red">Hi</p><a rel="noopener noreferrer nofollow">x</a>'
        '<a href="https://example.com/help" rel="noopener noreferrer nofollow">help</a>'
    )


def test_remote_images_are_dropped_inline_parts_kept():
    html = '<img src="https://tracker.example/p.gif" alt="logo"><img src="cid:part1@example.com" alt="chart">'
    assert sanitize_html(html) == '<img alt="logo"><img src="cid:part1@example.com" alt="chart">'


def test_nul_bytes_and_empty_input():
    assert sanitize_html("") == ""
    assert sanitize_html("<b>a\x00b</b>") == "<b>ab</b>"
