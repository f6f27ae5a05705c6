"""The parsing layer: real sample documents (from ../shared, skipped when absent) and
generated inputs for every bad case."""

from __future__ import annotations

import io
import random
import time
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from knowledge.parsing import (
    BinaryFile,
    CorruptedFile,
    EmptyFile,
    EncryptedFile,
    FileTooLarge,
    NoTextFound,
    ParseError,
    UnsupportedFileType,
    clean,
    parse,
    sniff,
)

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "docs"


def sample(name: str) -> bytes:
    """A shared sample document, or skip the test where ../shared is not there."""
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"sample {name} not available ({SAMPLES} is absent)")
    return path.read_bytes()


def timed_parse(data: bytes, filename: str):
    started = time.perf_counter()
    document = parse(data, filename)
    print(f"\nparse {filename}: {time.perf_counter() - started:.2f} s")
    return document


def make_pdf(*page_texts: str, password: str | None = None) -> bytes:
    """A PDF with one Helvetica text line per page (empty string: a page without text)."""
    writer = PdfWriter()
    for text in page_texts:
        page = writer.add_blank_page(width=595, height=842)
        if text:
            font = DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/Font"),
                    NameObject("/Subtype"): NameObject("/Type1"),
                    NameObject("/BaseFont"): NameObject("/Helvetica"),
                }
            )
            page[NameObject("/Resources")] = DictionaryObject(
                {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
            )
            stream = DecodedStreamObject()
            stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1"))
            page[NameObject("/Contents")] = writer._add_object(stream)
    if password is not None:
        writer.encrypt(user_password=password, owner_password=password + "-owner")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_docx(body_xml: str, styles_xml: str = "") -> bytes:
    """A minimal DOCX package around a document body."""
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        )
        archive.writestr(
            "word/document.xml", f"<w:document {w}><w:body>{body_xml}</w:body></w:document>"
        )
        if styles_xml:
            archive.writestr("word/styles.xml", f"<w:styles {w}>{styles_xml}</w:styles>")
    return buffer.getvalue()


def para(text: str, style: str = "") -> str:
    props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f'<w:p>{props}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


HEADING_STYLES = (
    '<w:style w:styleId="Title"><w:name w:val="Title"/></w:style>'
    '<w:style w:styleId="Heading1"><w:name w:val="heading 1"/></w:style>'
    '<w:style w:styleId="Heading2"><w:name w:val="heading 2"/></w:style>'
    '<w:style w:styleId="MyChapter"><w:name w:val="My chapter"/>'
    '<w:basedOn w:val="Heading1"/></w:style>'
)


# --- real documents -------------------------------------------------------------------------


def test_multi_column_pdf_reads_each_column_top_to_bottom():
    document = timed_parse(sample("multi-column-2p.pdf"), "multi-column-2p.pdf")

    assert document.kind == "pdf"
    assert document.metadata["pages"] == 2
    assert [s.metadata["page"] for s in document.sections] == [1, 2]
    first = document.sections[0].text
    assert first.startswith("Dense Passage Retrieval for Open-Domain Question Answering")
    # The abstract (left column) comes before the introduction, which flows on in order.
    assert first.index("Abstract") < first.index("1 Introduction")
    assert "efficient passage retrieval" in first  # ligature expanded, hyphenation rejoined
    assert "retrieval can be practically implemented using dense" in first
    second = document.sections[1].text
    assert second.index("In this paper, we address the question") < second.index(
        "Our contributions are twofold"
    )


def test_french_pdf_keeps_accents_and_pages():
    document = timed_parse(sample("fr_olap.pdf"), "fr_olap.pdf")

    assert document.metadata["pages"] == 12
    assert len(document.sections) == 12
    assert "Résumés et interrogations de logs de requêtes OLAP" in document.sections[0].text
    assert "Université François Rabelais" in document.text
    assert "ﬁ" not in document.text


def test_large_pdf_every_page_in_order():
    document = timed_parse(sample("GeoTopo-komprimiert.pdf"), "GeoTopo-komprimiert.pdf")

    assert document.metadata["pages"] == 117
    assert document.metadata["author"] == "Martin Thoma"
    pages = [s.metadata["page"] for s in document.sections]
    assert pages == sorted(pages) and len(pages) > 100
    assert "Geometrie und Topologie" in document.sections[0].text
    assert "METRISCHE RÄUME" in document.text


def test_small_docx_text():
    document = timed_parse(sample("handbook-1p.docx"), "handbook-1p.docx")

    assert document.kind == "docx"
    assert document.text.startswith("CHAPTER 1\n\nINTRODUCTION")
    assert "The United States Trustee appoints and supervises standing trustees" in document.text


def test_large_docx_is_fast_and_has_heading_paths():
    data = sample("handbook-872p.docx")
    started = time.perf_counter()
    document = parse(data, "handbook-872p.docx")
    elapsed = time.perf_counter() - started
    print(f"\nparse handbook-872p.docx: {elapsed:.2f} s, {len(document.text)} chars")

    assert elapsed < 5, "an 872-page DOCX must parse in seconds (python-docx takes ~4 s)"
    assert len(document.text) > 800_000
    paths = {s.heading_path for s in document.sections}
    assert ("CHAPTER 1 – INTRODUCTION", "A. PURPOSE") in paths  # noqa: RUF001 - the text
    purpose = next(s for s in document.sections if s.heading_path[-1:] == ("A. PURPOSE",))
    assert "appoints and supervises standing trustees" in purpose.text
    assert any(" | " in line for line in document.text.splitlines())  # its tables


def test_html_page_readable_text_without_scripts():
    document = timed_parse(sample("ideas-page.html"), "ideas-page.html")

    assert document.kind == "html"
    assert document.metadata["title"] == "How to Get New Ideas"
    assert document.text.startswith("January 2023")
    assert "The way to get new ideas is to notice anomalies" in document.text
    assert "document.referrer" not in document.text
    assert "\n\n" in document.text  # <br><br> paragraphs stay apart


def test_markdown_sections_by_heading():
    document = timed_parse(
        sample("dify-model-runtime-interfaces.md"), "dify-model-runtime-interfaces.md"
    )

    assert document.kind == "markdown"
    assert document.sections[0].heading_path == ("Interface Methods",)
    provider = next(s for s in document.sections if s.heading_path[-1:] == ("Provider",))
    assert provider.heading_path == ("Interface Methods", "Provider")
    assert "def validate_provider_credentials" in provider.text
    # "# ..." lines inside code fences are not headings.
    assert all(
        not p[-1].startswith(("import", "def"))
        for p in (s.heading_path for s in document.sections)
        if p
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("multi-column-2p.pdf", "pdf"),
        ("handbook-1p.docx", "docx"),
        ("ideas-page.html", "html"),
        ("dify-model-runtime-interfaces.md", "markdown"),
    ],
)
def test_sniff_ignores_misleading_names(name, kind):
    assert sniff(sample(name), "upload.txt") == kind
    assert sniff(sample(name), "") == kind


# --- generated documents --------------------------------------------------------------------


def test_generated_pdf_pages():
    document = parse(make_pdf("First page text", "", "Third page text"), "x.pdf")

    assert [(s.metadata["page"], s.text) for s in document.sections] == [
        (1, "First page text"),
        (3, "Third page text"),
    ]
    assert document.metadata["pages"] == 3
    assert document.text == "First page text\n\nThird page text"


def test_docx_headings_paragraphs_and_tables_in_order():
    table = (
        "<w:tbl>"
        "<w:tr><w:tc>" + para("Name") + "</w:tc><w:tc>" + para("Role") + "</w:tc></w:tr>"
        "<w:tr><w:tc>" + para("Ada") + "</w:tc><w:tc>" + para("Engineer") + "</w:tc></w:tr>"
        "</w:tbl>"
    )
    body = (
        para("Staff guide", "Title")
        + para("Intro", "Heading1")
        + para("Welcome aboard.")
        + para("Team", "Heading2")
        + table
        + para("After the table.")
        + para("Appendix", "MyChapter")
        + '<w:p><w:pPr><w:outlineLvl w:val="1"/></w:pPr><w:r><w:t>Direct</w:t></w:r></w:p>'
        + "<w:p><w:r><w:t>A</w:t><w:tab/><w:t>B</w:t><w:br/><w:t>C</w:t></w:r></w:p>"
        + "<w:sectPr/>"
    )
    document = parse(make_docx(body, HEADING_STYLES), "staff.docx")

    assert [(s.heading_path, s.text) for s in document.sections] == [
        (("Staff guide",), "Staff guide"),
        (("Staff guide", "Intro"), "Intro\n\nWelcome aboard."),
        (
            ("Staff guide", "Intro", "Team"),
            "Team\n\nName | Role\nAda | Engineer\n\nAfter the table.",
        ),
        (("Staff guide", "Appendix"), "Appendix"),
        (("Staff guide", "Appendix", "Direct"), "Direct\n\nA\tB\nC"),
    ]


def test_csv_one_section_per_row_with_header():
    data = b"name,city,age\nAda,London,36\nLinus,Helsinki,\n\n"
    document = parse(data, "people.csv")

    assert document.kind == "csv"
    assert document.metadata["columns"] == ["name", "city", "age"]
    assert [(s.metadata["row"], s.text) for s in document.sections] == [
        (1, "name: Ada\ncity: London\nage: 36"),
        (2, "name: Linus\ncity: Helsinki"),
    ]


def test_csv_sniffed_without_extension_and_semicolons():
    data = b'id;label;price\n1;"Tea; green";2,50\n2;Coffee;3,10\n3;Water;1,00\n'
    assert sniff(data, "") == "csv"
    document = parse(data, "")
    assert document.sections[0].text == "id: 1\nlabel: Tea; green\nprice: 2,50"


def test_prose_with_commas_is_not_csv():
    prose = (
        "Well, the meeting ran long, and nobody, it seemed, had read the notes.\n"
        "After lunch, we tried again.\n"
        "In the end, the plan, such as it was, went ahead, slowly, then all at once.\n"
    )
    assert sniff(prose.encode(), "") == "text"


def test_html_drops_scripts_styles_and_navigation():
    html = (
        "<!doctype html><html lang='en'><head><title>Guide</title><style>p{color:red}</style>"
        "<script>var secret = 1;</script></head><body><nav>Home | About</nav>"
        "<h1>Install</h1><p>Run the <b>installer</b>.</p><!-- a comment -->"
        "<h2>Linux</h2><ul><li>apt</li><li>dnf</li></ul>"
        "<table><tr><th>OS</th><th>Tool</th></tr><tr><td>Debian</td><td>apt</td></tr></table>"
        "<footer>Copyright 2024</footer><script>track()</script></body></html>"
    )
    document = parse(html.encode(), "page.html")

    assert document.metadata == {"title": "Guide", "language": "en", "encoding": "utf-8"}
    assert [(s.heading_path, s.text) for s in document.sections] == [
        (("Install",), "Install\nRun the installer."),
        (("Install", "Linux"), "Linux\n- apt\n- dnf\n\nOS | Tool\nDebian | apt"),
    ]
    for boilerplate in ("secret", "color", "Home", "Copyright", "track", "comment"):
        assert boilerplate not in document.text


def test_markdown_headings_fences_and_setext():
    text = (
        "Title\n=====\n\nIntro text.\n\n## Usage\n\n```sh\n# not a heading\nrun\n```\n\n"
        "### Options\n\n- a\n- b\n\nOther\n-----\n\nDone.\n"
    )
    document = parse(text.encode(), "readme.md")

    assert [s.heading_path for s in document.sections] == [
        ("Title",),
        ("Title", "Usage"),
        ("Title", "Usage", "Options"),
        ("Title", "Other"),
    ]
    assert "# not a heading" in document.sections[1].text
    assert document.sections[3].text == "Other\n-----\n\nDone."


def test_markdown_sniffed_without_extension():
    assert sniff(b"# Notes\n\nSome [link](https://x.y).\n", "notes") == "markdown"
    assert sniff(b"Just a sentence.\nAnd another.\n", "notes") == "text"


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-16", b""), ("utf-16-le", b"\xff\xfe"), ("latin-1", b""), ("utf-8-sig", b"")],
)
def test_text_encodings(encoding, bom):
    text = "Grüße aus Köln, señor! Ça coûte 5 €? Non: 5 francs.\n" * 3
    if encoding == "latin-1":
        text = text.replace("€", "EUR")
    data = bom + text.encode(encoding)
    document = parse(data, "letter.txt")

    assert document.kind == "text"
    assert document.text == text.strip("\n")


def test_chinese_text_in_gb18030_and_utf8():
    text = "知识库将文档切分成段落，然后建立向量索引。检索时先做语义搜索，再做全文搜索。\n" * 4  # noqa: RUF001
    for encoding in ("utf-8", "gb18030"):
        document = parse(text.encode(encoding), "zh.txt")
        assert document.text == text.strip("\n"), encoding


def test_text_is_normalised_to_nfc_without_controls():
    document = parse("Cafe\u0301\x07 bar\r\nnext".encode(), "a.txt")
    assert document.text == "Café bar\nnext"


# --- bad input ------------------------------------------------------------------------------


def test_zero_byte_file():
    with pytest.raises(EmptyFile) as caught:
        parse(b"", "empty.pdf")
    assert caught.value.code == "empty_file"
    assert "empty" in caught.value.reason


def test_too_large():
    with pytest.raises(FileTooLarge) as caught:
        parse(b"x" * 2048, "big.txt", max_bytes=1024)
    assert caught.value.reason == "The file is too large: 2.0 KB, the limit is 1.0 KB."


def test_truncated_pdf_is_corrupted():
    data = make_pdf("Hello world")
    with pytest.raises(CorruptedFile) as caught:
        parse(data[: len(data) // 3], "cut.pdf")
    assert "PDF file is damaged" in caught.value.reason


def test_encrypted_pdf_needs_its_password():
    with pytest.raises(EncryptedFile) as caught:
        parse(make_pdf("Top secret", password="s3cret"), "locked.pdf")
    assert caught.value.reason.startswith("The PDF is password-protected.")


def test_owner_password_only_pdf_opens():
    writer_data = make_pdf("Readable", password="")
    assert parse(writer_data, "restricted.pdf").text == "Readable"


def test_pdf_without_text_layer_says_scanned():
    with pytest.raises(NoTextFound) as caught:
        parse(make_pdf("", ""), "scan.pdf")
    assert "no text layer" in caught.value.reason and "OCR" in caught.value.reason


def test_random_bytes_named_txt():
    data = random.Random(7).randbytes(4096)  # noqa: S311 - reproducible, not secret
    with pytest.raises(BinaryFile) as caught:
        parse(data, "notes.txt")
    assert caught.value.code == "binary_file"
    assert "notes.txt" in caught.value.reason and "binary" in caught.value.reason


def test_png_named_pdf():
    data = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
    with pytest.raises(UnsupportedFileType) as caught:
        parse(data, "report.pdf")
    assert "PNG image" in caught.value.reason and "report.pdf" in caught.value.reason


def test_zip_that_is_not_docx():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(UnsupportedFileType, match="ZIP archive"):
        parse(buffer.getvalue(), "fake.docx")


def test_xlsx_is_named_for_what_it_is():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(UnsupportedFileType, match="Excel workbook"):
        sniff(buffer.getvalue(), "book.xlsx")


def test_truncated_docx_is_corrupted():
    data = make_docx(para("Hello"))
    with pytest.raises(CorruptedFile, match="DOCX file is damaged"):
        parse(data[: len(data) // 2], "cut.docx")


def test_docx_with_broken_xml_is_corrupted():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w:document><w:body><w:p>")
    with pytest.raises(CorruptedFile):
        parse(buffer.getvalue(), "broken.docx")


def test_encrypted_office_file():
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200) + "EncryptedPackage".encode("utf-16-le")
    with pytest.raises(EncryptedFile, match="password-protected"):
        parse(data, "secret.docx")


def test_documents_without_text():
    with pytest.raises(NoTextFound):
        parse(b"   \n\t\n", "blank.txt")
    with pytest.raises(NoTextFound):
        parse(b"<html><body><script>x()</script></body></html>", "empty.html")
    with pytest.raises(NoTextFound, match="no data rows"):
        parse(b"a,b,c\n", "header-only.csv")
    with pytest.raises(NoTextFound):
        parse(make_docx("<w:p/>"), "empty.docx")


def test_fuzz_never_escapes_as_a_generic_exception():
    rng = random.Random(1234)  # noqa: S311 - reproducible, not secret
    seeds = [
        make_pdf("Hello fuzz", "Second page"),
        make_docx(para("Hello", "Heading1") + para("World"), HEADING_STYLES),
        b"<html><body><h1>T</h1><p>x</p></body></html>",
        b"# T\n\n- a\n- b\n",
        b"a,b\n1,2\n3,4\n",
    ]
    for seed in seeds:
        for _ in range(40):
            data = bytearray(seed)
            mutation = rng.choice(["truncate", "flip", "random"])
            if mutation == "truncate":
                data = data[: rng.randrange(1, len(data))]
            elif mutation == "flip":
                for _ in range(rng.randint(1, 20)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            else:
                data = bytearray(rng.randbytes(rng.randint(1, 2048)))
            for name in ("f.pdf", "f.docx", "f.txt", ""):
                try:
                    document = parse(bytes(data), name)
                except ParseError as exc:
                    assert exc.reason
                else:
                    assert "\x00" not in document.text


# --- cleaning -------------------------------------------------------------------------------


def test_clean_collapses_whitespace_and_strips_controls():
    raw = "  Hello \t  world\x00\x1b!  \r\n\n\n\n Next\u00a0\u00a0line \nA\u0308"
    assert clean(raw) == "Hello world!\n\n Next line\nÄ"
    assert (
        clean(raw, collapse_whitespace=False)
        == "  Hello \t  world!  \n\n\n\n Next\u00a0\u00a0line \nÄ"
    )


def test_clean_removes_urls_and_emails_on_request():
    raw = (
        "Write to ada@example.com or see https://example.com/docs?x=1. "
        "Also [the guide](https://example.com/guide) and www.example.org, thanks."
    )
    assert clean(raw) == raw
    assert clean(raw, remove_urls_emails=True) == ("Write to or see . Also the guide and , thanks.")
