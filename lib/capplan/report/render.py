"""Render a document (a list of blocks) to GitHub-flavoured Markdown and to self-contained HTML.

Blocks are plain tuples, so the same document gives both outputs and they cannot disagree:

* ``("title", text, subtitle)``, ``("h2", text)``, ``("h3", text)``, ``("p", text)``
* ``("banner", text)``  a highlighted notice (synthetic data, failed parts)
* ``("ul", [text, ...])``
* ``("status_list", [(status, text), ...])`` a list whose items lead with a status badge
* ``("table", headers, rows, caption_or_None)`` with ``rows`` a list of lists of str; a cell
  that is a status word listed in :data:`STATUS_CLASS` is shown as a coloured badge in HTML
* ``("figure", relative_png_path, caption)``

The HTML is one file: CSS inline, figures embedded as base64 data URIs, no scripts, no code,
readable on a narrow screen (tables scroll sideways, images scale down).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

__all__ = ["to_markdown", "to_html", "write_pdf", "STATUS_CLASS", "md_escape"]

STATUS_CLASS = {
    "meets": "ok", "better": "ok", "no detectable change": "neutral", "not within horizon": "ok",
    "at risk": "warn", "crosses": "warn", "insufficient evidence": "neutral",
    "insufficient data": "neutral", "no limit": "neutral", "misses": "bad", "worse": "bad",
    "already over limit": "bad", "critical": "bad", "info": "neutral", "increased": "neutral",
    "decreased": "neutral", "stale": "bad", "failed": "bad",
}

_CSS = """
:root{--fg:#1d232b;--muted:#5b6675;--line:#d9dee5;--ok:#1e7a3c;--warn:#a35c00;--bad:#b3261e;--neutral:#4b5563}
*{box-sizing:border-box}body{margin:0;font:15px/1.55 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:#fff}
main{max-width:920px;margin:0 auto;padding:24px 18px 64px}
h1{font-size:1.7em;line-height:1.25;margin:.2em 0 .1em}h2{font-size:1.25em;margin:1.8em 0 .5em;padding-bottom:.2em;border-bottom:1px solid var(--line)}
h3{font-size:1.05em;margin:1.3em 0 .4em}.subtitle{color:var(--muted);margin:0 0 1em}
.banner{background:#fff4e5;border-left:4px solid var(--warn);padding:.6em .9em;margin:1em 0;font-weight:600}
.tablewrap{overflow-x:auto;margin:.6em 0 1em}table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{border-bottom:1px solid var(--line);padding:.45em .55em;text-align:left;vertical-align:top}th{background:#f5f7fa;font-weight:600;white-space:nowrap}
caption{caption-side:bottom;text-align:left;color:var(--muted);font-size:.85em;padding-top:.4em}
.badge{display:inline-block;padding:.05em .5em;border-radius:1em;font-size:.85em;font-weight:600;color:#fff;white-space:nowrap}
.badge.ok{background:var(--ok)}.badge.warn{background:var(--warn)}.badge.bad{background:var(--bad)}.badge.neutral{background:var(--neutral)}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid var(--line)}figcaption{color:var(--muted);font-size:.85em}
ul{padding-left:1.3em}li{margin:.25em 0}ul.findings{list-style:none;padding-left:0}ul.findings li{margin:.45em 0}
@media print{@page{size:A4 landscape;margin:12mm}main{max-width:none;padding:0}.tablewrap{overflow:visible}table{table-layout:auto;font-size:.78em}th,td{white-space:normal;overflow-wrap:break-word;hyphens:auto}th{white-space:normal}}
@media (max-width:600px){body{font-size:14px}main{padding:14px 10px 40px}h1{font-size:1.35em}}
"""


def md_escape(text) -> str:
    """Text made inert for Markdown: no raw HTML (``<script>``, ``<img onerror>``), no links or
    images (``[x](javascript:...)``), no entities; everything else reads as written."""
    t = str(text)
    for ch, rep in (("\\", "\\\\"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"),
                    ("[", "\\["), ("]", "\\]"), ("`", "\\`")):
        t = t.replace(ch, rep)
    return t


def _md_cell(text: str) -> str:
    return md_escape(text).replace("|", "\\|").replace("\n", " ")


def _item(x) -> tuple[str, object]:
    """(text, refs) of a list item written as ``text`` or ``(text, refs)``."""
    return (x[0], x[1]) if isinstance(x, tuple) else (x, None)


def to_markdown(blocks: list[tuple]) -> str:
    """GitHub-flavoured Markdown for the document (every text escaped: :func:`md_escape`)."""
    out: list[str] = []
    e = md_escape
    for b in blocks:
        kind = b[0]
        if kind == "title":
            out += [f"# {e(b[1])}", ""] + ([f"_{e(b[2])}_", ""] if b[2] else [])
        elif kind == "h2":
            out += [f"## {e(b[1])}", ""]
        elif kind == "h3":
            out += [f"### {e(b[1])}", ""]
        elif kind == "p":
            out += [e(b[1]), ""]
        elif kind == "banner":
            out += [f"> **{e(b[1])}**", ""]
        elif kind == "ul":
            out += [f"- {e(_item(item)[0])}" for item in b[1]] + [""]
        elif kind == "status_list":
            out += [f"- **{e(it[0])}**: {e(it[1])}" for it in b[1]] + [""]
        elif kind == "table":
            headers, rows, caption = b[1], b[2], b[3]
            out.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            for r in rows:
                out.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
            out.append("")
            if caption:
                out += [f"_{e(caption)}_", ""]
        elif kind == "figure":
            out += [f"![{e(b[2])}]({b[1]})", "", f"_{e(b[2])}_", ""]
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    return "\n".join(out).rstrip() + "\n"


def _ref_attr(refs) -> str:
    """` data-finding="id1 id2"`: the summary.json findings an element's numbers come from."""
    if not refs:
        return ""
    ids = [refs] if isinstance(refs, str) else list(refs)
    return f' data-finding="{html.escape(" ".join(ids), quote=True)}"'


def _cell_html(text: str) -> str:
    cls = STATUS_CLASS.get(str(text).strip().lower())
    esc = html.escape(str(text))
    return f'<span class="badge {cls}">{esc}</span>' if cls else esc


def _img(run_dir: Path, rel: str) -> str:
    data = (run_dir / rel).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def to_html(blocks: list[tuple], *, run_dir: str | Path, title: str) -> str:
    """One self-contained HTML page (figures embedded from ``run_dir``).

    Optional trailing elements of a block name the findings its numbers come from (``refs``:
    an id or a list of ids), rendered as ``data-finding``: ``("title", text, sub, refs)``,
    ``("p", text, refs)``, ``("banner", text, refs)``, ``("ul", [(text, refs), ...])``,
    ``("status_list", [(status, text, refs), ...])``,
    ``("table", headers, rows, caption, row_refs, caption_refs)``,
    ``("figure", path, caption, refs)``.
    """
    run_dir = Path(run_dir)
    opt = lambda b, i: b[i] if len(b) > i else None  # noqa: E731
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>"]
    for b in blocks:
        kind = b[0]
        if kind == "title":
            parts.append(f"<h1{_ref_attr(opt(b, 3))}>{html.escape(b[1])}</h1>")
            if b[2]:
                parts.append(f'<p class="subtitle"{_ref_attr(opt(b, 3))}>{html.escape(b[2])}</p>')
        elif kind in ("h2", "h3"):
            parts.append(f"<{kind}>{html.escape(b[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p{_ref_attr(opt(b, 2))}>{html.escape(b[1])}</p>")
        elif kind == "banner":
            parts.append(f'<div class="banner"{_ref_attr(opt(b, 2))}>{html.escape(b[1])}</div>')
        elif kind == "ul":
            parts.append("<ul>" + "".join(
                f"<li{_ref_attr(r)}>{html.escape(t)}</li>" for t, r in map(_item, b[1])) + "</ul>")
        elif kind == "status_list":
            parts.append('<ul class="findings">' + "".join(
                f"<li{_ref_attr(it[2] if len(it) > 2 else None)}>{_cell_html(it[0])} "
                f"{html.escape(it[1])}</li>" for it in b[1]) + "</ul>")
        elif kind == "table":
            headers, rows, caption = b[1], b[2], b[3]
            row_refs, cap_refs = opt(b, 4) or [None] * len(rows), opt(b, 5)
            t = ['<div class="tablewrap"><table>']
            if caption:
                t.append(f"<caption{_ref_attr(cap_refs)}>{html.escape(caption)}</caption>")
            t.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr></thead><tbody>")
            for r, ref in zip(rows, row_refs):
                t.append(f"<tr{_ref_attr(ref)}>" + "".join(f"<td>{_cell_html(c)}</td>" for c in r) + "</tr>")
            t.append("</tbody></table></div>")
            parts.append("".join(t))
        elif kind == "figure":
            parts.append(f'<figure{_ref_attr(opt(b, 3))}><img alt="{html.escape(b[2])}" '
                         f'src="{_img(run_dir, b[1])}">'
                         f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def write_pdf(html_path: str | Path, *, timeout_s: float = 90) -> Path | None:
    """``report.pdf`` beside ``html_path`` through a headless Chromium, when one is installed.

    Never a hard dependency: returns None (and writes nothing) when no browser is found or the
    conversion fails; the HTML and Markdown stay the report of record.
    """
    import shutil
    import subprocess
    import tempfile

    exe = next((p for p in map(shutil.which, _BROWSERS) if p), None)
    if exe is None:
        return None
    html_path = Path(html_path)
    pdf = html_path.with_suffix(".pdf")
    tmp = pdf.with_suffix(".pdf.tmp")
    with tempfile.TemporaryDirectory(prefix="capplan-chromium-") as profile:
        try:
            subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync",
                            f"--user-data-dir={profile}", "--no-pdf-header-footer",
                            f"--print-to-pdf={tmp}", html_path.resolve().as_uri()],
                           capture_output=True, timeout=timeout_s, check=True)
        except (OSError, subprocess.SubprocessError):
            tmp.unlink(missing_ok=True)
            return None
    if not tmp.exists() or tmp.stat().st_size == 0:
        return None
    tmp.replace(pdf)
    return pdf
