/* Markdown to DOM for the portal: what model answers use (paragraphs, headings, lists,
 * quotes, fenced code, tables, rules, emphasis, inline code, links), built with
 * createElement and textContent only. No HTML in the text is ever parsed, so an answer, a
 * conversation name or a user's message cannot inject markup or script: what is not
 * Markdown shows as the text it is. Links keep only http(s) and mailto targets. */
(function (global) {
  "use strict";

  var SAFE_LINK = /^(https?:\/\/|mailto:)/i;

  function el(tag, className) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  // Inline: `code`, **strong**, *em* / _em_, ~~del~~, [text](url), bare https:// links.
  var INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|(^|[^\w])_([^_\s][^_]*)_(?!\w)|~~([^~]+)~~|\[([^\]]+)\]\(([^)\s]+)(?:\s+"[^"]*")?\)|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/;

  function inline(parent, text) {
    while (text) {
      var m = INLINE.exec(text);
      if (!m) {
        parent.appendChild(document.createTextNode(text));
        return;
      }
      var before = text.slice(0, m.index);
      if (m[6] !== undefined) before += m[6]; // the character before _em_
      if (before) parent.appendChild(document.createTextNode(before));
      var node;
      if (m[1] !== undefined) {
        node = el("code");
        node.textContent = m[2].replace(/^ (.*) $/, "$1");
      } else if (m[3] !== undefined || m[4] !== undefined) {
        node = el("strong");
        inline(node, m[3] !== undefined ? m[3] : m[4]);
      } else if (m[5] !== undefined || m[7] !== undefined) {
        node = el("em");
        inline(node, m[5] !== undefined ? m[5] : m[7]);
      } else if (m[8] !== undefined) {
        node = el("del");
        inline(node, m[8]);
      } else if (m[9] !== undefined) {
        node = link(m[10]);
        if (node) inline(node, m[9]);
        else node = document.createTextNode(m[0]);
      } else {
        node = link(m[11]);
        if (node) node.textContent = m[11];
        else node = document.createTextNode(m[11]);
      }
      parent.appendChild(node);
      text = text.slice(m.index + m[0].length);
    }
  }

  function link(href) {
    if (!SAFE_LINK.test(href)) return null;
    var a = el("a");
    a.href = href;
    a.rel = "noopener noreferrer nofollow";
    a.target = "_blank";
    return a;
  }

  function isTableRule(line) {
    return /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(line);
  }

  function cells(line) {
    var trimmed = line.trim().replace(/^\|/, "").replace(/\|$/, "");
    return trimmed.split("|").map(function (cell) { return cell.trim(); });
  }

  var LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;

  // Blocks, line by line. An unclosed fence (an answer still streaming) runs to the end.
  function render(source) {
    var root = document.createDocumentFragment();
    var lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
    var i = 0;
    var paragraph = [];

    function flush() {
      if (!paragraph.length) return;
      var p = el("p");
      paragraph.forEach(function (line, index) {
        if (index) p.appendChild(el("br"));
        inline(p, line);
      });
      root.appendChild(p);
      paragraph = [];
    }

    while (i < lines.length) {
      var line = lines[i];
      var fence = /^\s*(```+|~~~+)\s*([\w+#.-]*)/.exec(line);
      if (fence) {
        flush();
        var code = [];
        i += 1;
        while (i < lines.length && lines[i].trim().indexOf(fence[1]) !== 0) {
          code.push(lines[i]);
          i += 1;
        }
        i += 1;
        var pre = el("pre", "weft-code");
        var codeEl = el("code");
        if (fence[2]) codeEl.setAttribute("data-language", fence[2]);
        codeEl.textContent = code.join("\n");
        pre.appendChild(codeEl);
        root.appendChild(pre);
        continue;
      }
      var heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
      if (heading) {
        flush();
        var h = el("h" + Math.min(6, heading[1].length + 2));
        inline(h, heading[2]);
        root.appendChild(h);
        i += 1;
        continue;
      }
      if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
        flush();
        root.appendChild(el("hr"));
        i += 1;
        continue;
      }
      if (/^\s*>/.test(line)) {
        flush();
        var quoted = [];
        while (i < lines.length && /^\s*>/.test(lines[i])) {
          quoted.push(lines[i].replace(/^\s*>\s?/, ""));
          i += 1;
        }
        var quote = el("blockquote");
        quote.appendChild(render(quoted.join("\n")));
        root.appendChild(quote);
        continue;
      }
      if (line.indexOf("|") !== -1 && i + 1 < lines.length && isTableRule(lines[i + 1])) {
        flush();
        var table = el("table");
        var head = el("thead");
        var headRow = el("tr");
        cells(line).forEach(function (cell) {
          var th = el("th");
          inline(th, cell);
          headRow.appendChild(th);
        });
        head.appendChild(headRow);
        table.appendChild(head);
        var body = el("tbody");
        i += 2;
        while (i < lines.length && lines[i].indexOf("|") !== -1 && lines[i].trim()) {
          var row = el("tr");
          cells(lines[i]).forEach(function (cell) {
            var td = el("td");
            inline(td, cell);
            row.appendChild(td);
          });
          body.appendChild(row);
          i += 1;
        }
        table.appendChild(body);
        var wrap = el("div", "weft-table");
        wrap.appendChild(table);
        root.appendChild(wrap);
        continue;
      }
      var item = LIST_ITEM.exec(line);
      if (item) {
        flush();
        var ordered = /\d/.test(item[2]);
        var list = el(ordered ? "ol" : "ul");
        if (ordered && parseInt(item[2], 10) !== 1) list.start = parseInt(item[2], 10);
        var indent = item[1].length;
        var sameKind = function (found) { return /\d/.test(found[2]) === ordered; };
        while (i < lines.length) {
          var current = LIST_ITEM.exec(lines[i]);
          if (current && current[1].length <= indent && sameKind(current)) {
            var li = el("li");
            var content = [current[3]];
            i += 1;
            // Continuation and nested lines: anything indented deeper than the marker.
            while (i < lines.length && lines[i].trim() && /^\s/.test(lines[i]) &&
                   lines[i].search(/\S/) > indent) {
              content.push(lines[i].slice(Math.min(lines[i].search(/\S/), indent + 2)));
              i += 1;
            }
            if (content.length === 1) inline(li, content[0]);
            else li.appendChild(render(content.join("\n")));
            list.appendChild(li);
          } else if (!lines[i].trim() && i + 1 < lines.length &&
                     LIST_ITEM.test(lines[i + 1]) &&
                     LIST_ITEM.exec(lines[i + 1])[1].length <= indent &&
                     sameKind(LIST_ITEM.exec(lines[i + 1]))) {
            i += 1; // a blank line between items of one list
          } else {
            break;
          }
        }
        root.appendChild(list);
        continue;
      }
      if (!line.trim()) {
        flush();
        i += 1;
        continue;
      }
      paragraph.push(line);
      i += 1;
    }
    flush();
    return root;
  }

  global.WeftMarkdown = { render: render };
})(window);
