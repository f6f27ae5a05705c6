/* A chat bubble for another site's pages:
 *   <script src="https://WEFT/static/portal/embed.js" data-weft-site="CODE" defer></script>
 * Optional: data-weft-color="#155eef" (the bubble), data-weft-label="Chat with us".
 * The chat itself opens in an iframe from the Weft host the script came from; the site's
 * allowed embedding origins decide which pages may show it. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.getAttribute("data-weft-site")) return;
  var code = script.getAttribute("data-weft-site");
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(code)) return;
  var origin = new URL(script.src, location.href).origin;
  var color = script.getAttribute("data-weft-color") || "#155eef";
  if (!/^#[0-9a-fA-F]{6}$/.test(color)) color = "#155eef";
  var label = script.getAttribute("data-weft-label") || "Chat";

  var button = document.createElement("button");
  button.type = "button";
  button.id = "weft-bubble";
  button.setAttribute("aria-label", label);
  button.setAttribute("aria-expanded", "false");
  button.textContent = "💬";
  button.style.cssText = "position:fixed;right:20px;bottom:20px;width:56px;height:56px;" +
    "border-radius:50%;border:0;font-size:26px;cursor:pointer;z-index:2147483000;" +
    "box-shadow:0 4px 16px rgba(0,0,0,.25);color:#fff;background:" + color;

  var frame = null;
  button.addEventListener("click", function () {
    if (!frame) {
      frame = document.createElement("iframe");
      frame.id = "weft-bubble-frame";
      frame.title = label;
      frame.src = origin + "/c/" + encodeURIComponent(code) + "/?embed=1";
      frame.allow = "clipboard-write";
      frame.style.cssText = "position:fixed;right:20px;bottom:88px;width:min(400px,calc(100vw - 40px));" +
        "height:min(620px,calc(100vh - 120px));border:0;border-radius:12px;z-index:2147483000;" +
        "box-shadow:0 8px 32px rgba(0,0,0,.25);background:#fff";
      document.body.appendChild(frame);
    } else {
      frame.hidden = !frame.hidden;
    }
    button.setAttribute("aria-expanded", frame.hidden ? "false" : "true");
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && frame && !frame.hidden) {
      frame.hidden = true;
      button.setAttribute("aria-expanded", "false");
      button.focus();
    }
  });

  function mount() { document.body.appendChild(button); }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
