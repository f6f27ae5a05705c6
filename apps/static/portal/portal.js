/* The portal page: a chat (chat, agent-chat and chatflow apps), a completion form, or a
 * workflow form with its node-by-node progress. It speaks the Service API's paths and
 * events under the site's own prefix (the visitor's session stands for the API key and the
 * `user`), streaming over a WebSocket, or over SSE when the socket cannot be used; a
 * stream cut off half-way is picked up where it left with Last-Event-ID.
 *
 * Everything from users and models reaches the page through textContent or
 * WeftMarkdown.render (DOM nodes, never HTML strings). */
(function () {
  "use strict";

  var root = document.getElementById("weft-portal");
  var config = JSON.parse(document.getElementById("weft-portal-config").textContent);
  var S = config.strings;
  var params = {}; // GET parameters, once signed in
  var CHAT_MODES = ["chat", "agent-chat", "advanced-chat"];
  var isChat = CHAT_MODES.indexOf(config.mode) !== -1;

  function t(key, values) {
    var text = S[key] || key;
    Object.keys(values || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(values[name]));
    });
    return text;
  }

  function $(selector, scope) { return (scope || document).querySelector(selector); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else if (name.slice(0, 2) === "on") node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  // --- Talking to the server -------------------------------------------------------------

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }

  // The visitor's passport, kept per site in this browser (see apps/portal/passports.py).
  var passportKey = "weft:passport:" + config.code;
  var passport = null;
  try { passport = window.localStorage.getItem(passportKey); } catch (e) { passport = null; }

  function keepPassport(value) {
    passport = value;
    try {
      if (value) window.localStorage.setItem(passportKey, value);
      else window.localStorage.removeItem(passportKey);
    } catch (e) { /* storage refused: this page keeps it alone */ }
  }

  function authHeaders(accept) {
    var headers = { "X-CSRFToken": config.csrf, "Accept": accept };
    if (passport) headers.Authorization = "Bearer " + passport;
    return headers;
  }

  function request(method, path, body, isForm) {
    var headers = authHeaders("application/json");
    var options = { method: method, headers: headers, credentials: "same-origin" };
    if (body !== undefined) {
      if (isForm) {
        options.body = body;
      } else {
        headers["Content-Type"] = "application/json";
        options.body = JSON.stringify(body);
      }
    }
    return fetch(config.api + path, options).then(function (response) {
      if (response.status === 204) return null;
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          if (response.status === 401 && path !== "passport") signedOut(data.message);
          throw new ApiError(response.status, data.code || "error",
            data.message || t("error_generic"));
        }
        return data;
      });
    }, function () {
      throw new ApiError(0, "network", t("error_network"));
    });
  }

  var toastTimer = null;
  function notify(message) {
    var box = $("#weft-toast");
    box.textContent = message;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.hidden = true; }, 6000);
  }

  function quiet() {
    clearTimeout(toastTimer);
    $("#weft-toast").hidden = true;
  }

  function failed(error) {
    notify(error && error.message ? error.message : t("error_generic"));
  }

  // A task's events, from a WebSocket shared by the page or from SSE. `run(action, body,
  // handlers)` starts one; handlers: started(ids), event(data), done(), failed(error).
  var Stream = (function () {
    var socket = null;
    var socketState = config.ws ? "idle" : "off"; // idle | opening | open | off
    var waiting = [];
    var pending = {}; // request_id -> handlers, until task_started
    var tasks = {}; // task_id -> {handlers, last}
    var counter = 0;

    function openSocket() {
      if (socketState !== "idle") return;
      socketState = "opening";
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      try {
        socket = new WebSocket(scheme + location.host + config.ws);
      } catch (e) {
        socketState = "off";
        flushWaiting();
        return;
      }
      socket.onopen = function () {
        socket.send(JSON.stringify({ authorization: "Bearer " + passport }));
      };
      socket.onmessage = function (message) {
        var data;
        try { data = JSON.parse(message.data); } catch (e) { return; }
        if (data.event === "ready") {
          socketState = "open";
          flushWaiting();
          return;
        }
        if (data.event === "task_started" || data.event === "subscribed") {
          var started = pending[data.request_id];
          delete pending[data.request_id];
          if (started && data.task_id) {
            tasks[data.task_id] = { handlers: started, last: "0-0" };
            if (data.event === "task_started") started.started(data);
          }
          return;
        }
        if (data.event === "error" && data.request_id && pending[data.request_id]) {
          var refused = pending[data.request_id];
          delete pending[data.request_id];
          refused.failed(new ApiError(data.status, data.code, data.message));
          return;
        }
        var followed = tasks[data.task_id];
        if (!followed) return;
        if (data.event_id) followed.last = data.event_id;
        deliver(data.task_id, followed, data);
      };
      socket.onclose = function () {
        var wasOpen = socketState === "open";
        socketState = "off"; // SSE from now on
        socket = null;
        flushWaiting();
        Object.keys(pending).forEach(function (id) {
          var handlers = pending[id];
          delete pending[id];
          handlers.failed(new ApiError(0, "network", t("error_network")));
        });
        // Tasks being followed go on over SSE from their last event.
        Object.keys(tasks).forEach(function (taskId) {
          var followed = tasks[taskId];
          delete tasks[taskId];
          if (wasOpen) resume(taskId, followed.last, followed.handlers);
        });
      };
    }

    function flushWaiting() {
      var queued = waiting;
      waiting = [];
      queued.forEach(function (job) { job(); });
    }

    function deliver(taskId, followed, data) {
      followed.handlers.event(data);
      if (isLast(data)) {
        delete tasks[taskId];
        followed.handlers.done();
      }
    }

    function isLast(data) {
      if (data.event === "error") return true;
      if (data.event === "message_end") return true; // a chatflow's comes after its workflow_finished
      if (data.event === "workflow_finished") return config.mode === "workflow";
      return false;
    }

    function viaSocket(action, body, handlers) {
      counter += 1;
      var id = "r" + counter;
      pending[id] = handlers;
      socket.send(JSON.stringify({ action: action, body: body, request_id: id }));
    }

    // SSE over fetch: a POST that starts the task, or a GET that follows one.
    function sse(method, path, body, handlers, after) {
      var headers = authHeaders("text/event-stream");
      if (body) headers["Content-Type"] = "application/json";
      if (after) headers["Last-Event-ID"] = after;
      var state = { last: after || "0-0", taskId: null, ended: false };
      fetch(config.api + path, {
        method: method,
        headers: headers,
        credentials: "same-origin",
        body: body ? JSON.stringify(body) : undefined,
      }).then(function (response) {
        if (!response.ok) {
          return response.json().catch(function () { return {}; }).then(function (data) {
            throw new ApiError(response.status, data.code, data.message || t("error_generic"));
          });
        }
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) return finish();
            buffer += decoder.decode(chunk.value, { stream: true });
            var parts = buffer.split("\n\n");
            buffer = parts.pop();
            parts.forEach(function (part) { frame(part); });
            return state.ended ? reader.cancel() : pump();
          });
        }
        return pump();
      }).catch(function (error) {
        if (state.ended) return;
        if (state.taskId) {
          resume(state.taskId, state.last, handlers); // the connection broke: pick it up
        } else {
          handlers.failed(error instanceof ApiError ? error :
            new ApiError(0, "network", t("error_network")));
        }
      });

      function frame(part) {
        var id = null;
        var data = "";
        part.split("\n").forEach(function (line) {
          if (line.indexOf("id:") === 0) id = line.slice(3).trim();
          else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
        });
        if (!data || state.ended) return;
        var parsed;
        try { parsed = JSON.parse(data); } catch (e) { return; }
        if (id) state.last = id;
        if (parsed.event === "ping") return;
        if (!state.taskId && parsed.task_id) {
          state.taskId = parsed.task_id;
          if (method === "POST") handlers.started(parsed);
        }
        handlers.event(parsed);
        if (isLast(parsed)) {
          state.ended = true;
          handlers.done();
        }
      }

      function finish() {
        if (state.ended) return;
        if (state.taskId) resume(state.taskId, state.last, handlers);
        else handlers.failed(new ApiError(0, "network", t("error_network")));
      }
    }

    var resumeTries = {};
    function resume(taskId, after, handlers) {
      resumeTries[taskId] = (resumeTries[taskId] || 0) + 1;
      if (resumeTries[taskId] > 5) {
        handlers.failed(new ApiError(0, "network", t("error_network")));
        return;
      }
      var path = config.mode === "workflow" ? "workflow/" + taskId + "/events"
        : "chat-messages/" + taskId + "/events";
      setTimeout(function () { sse("GET", path, null, handlers, after); },
        400 * resumeTries[taskId]);
    }

    function run(action, body, handlers) {
      body.response_mode = "streaming";
      var go = function () {
        if (socketState === "open") viaSocket(action, body, handlers);
        else sse("POST", action, body, handlers, null);
      };
      if (socketState === "idle") {
        waiting.push(go);
        openSocket();
        // A socket that does not open soon is not waited for.
        setTimeout(function () {
          if (socketState === "opening") {
            socketState = "off";
            if (socket) socket.close();
            flushWaiting();
          }
        }, 3000);
      } else if (socketState === "opening") {
        waiting.push(go);
      } else {
        go();
      }
    }

    function stop(kind, taskId) {
      return request("POST", kind + "/" + taskId + "/stop", {});
    }

    return { run: run, stop: stop };
  })();

  // --- Pieces of the page ----------------------------------------------------------------

  function markdownInto(node, text) {
    node.textContent = "";
    node.appendChild(WeftMarkdown.render(text));
  }

  function copyText(text, button) {
    var done = function () {
      var label = button.textContent;
      button.textContent = t("copied");
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { notify(t("copy_failed")); });
    } else {
      var area = el("textarea", { "aria-hidden": "true" });
      area.value = text;
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } catch (e) { notify(t("copy_failed")); }
      document.body.removeChild(area);
    }
  }

  function fileKind(mime) {
    if (/^image\//.test(mime)) return "image";
    if (/^audio\//.test(mime)) return "audio";
    if (/^video\//.test(mime)) return "video";
    return "document";
  }

  // The app's input form (Dify's user_input_form): fields, and their values when asked.
  function InputForm(container) {
    var fields = [];
    (params.user_input_form || []).forEach(function (entry) {
      var type = Object.keys(entry)[0];
      var spec = entry[type] || {};
      if (!spec.variable) return;
      var id = "weft-input-" + spec.variable;
      var label = el("label", { "for": id, text: (spec.label || spec.variable) +
        (spec.required ? " *" : "") });
      var input;
      if (type === "paragraph") {
        input = el("textarea", { id: id, rows: "3" });
      } else if (type === "select") {
        input = el("select", { id: id }, [el("option", { value: "", text: t("choose") })]);
        (spec.options || []).forEach(function (option) {
          input.appendChild(el("option", { value: option, text: option }));
        });
      } else if (type === "number") {
        input = el("input", { id: id, type: "number", step: "any" });
      } else if (type === "file" || type === "file-list") {
        return; // files go with the message's attachments
      } else {
        input = el("input", { id: id, type: "text" });
      }
      if (spec.max_length && input.tagName !== "SELECT") input.maxLength = spec.max_length;
      if (spec.required) input.required = true;
      if (spec.default !== undefined && spec.default !== null) input.value = spec.default;
      fields.push({ spec: spec, type: type, input: input });
      container.appendChild(el("div", { className: "weft-field" }, [label, input]));
    });
    this.empty = fields.length === 0;
    this.values = function () {
      var values = {};
      for (var i = 0; i < fields.length; i += 1) {
        var field = fields[i];
        var raw = field.input.value;
        if (field.spec.required && !String(raw).trim()) {
          field.input.focus();
          throw new ApiError(400, "invalid_param",
            t("field_required", { name: field.spec.label || field.spec.variable }));
        }
        if (raw === "") continue;
        values[field.spec.variable] = field.type === "number" ? Number(raw) : raw;
      }
      return values;
    };
    this.lock = function (locked) {
      fields.forEach(function (field) { field.input.disabled = locked; });
    };
  }

  // Files picked for the next message: uploaded at once, sent by id.
  function Attachments(bar, button, input) {
    var upload = params.file_upload || {};
    var limit = upload.number_limits || 3;
    var files = [];
    var enabled = !!upload.enabled;
    button.hidden = !enabled;
    if (!enabled) return { list: function () { return []; }, clear: function () {} };
    var maxBytes = ((params.system_parameters || {}).file_size_limit || 15) * 1024 * 1024;
    button.addEventListener("click", function () { input.click(); });
    input.addEventListener("change", function () {
      Array.prototype.slice.call(input.files).forEach(add);
      input.value = "";
    });
    function draw() {
      bar.textContent = "";
      files.forEach(function (file, index) {
        var chip = el("span", { className: "weft-chip" + (file.id ? "" : " is-busy") }, [
          el("span", { text: file.name }),
          el("button", {
            type: "button", className: "weft-chip-x", "aria-label": t("remove_file", { name: file.name }),
            text: "×", onclick: function () { files.splice(index, 1); draw(); },
          }),
        ]);
        bar.appendChild(chip);
      });
      bar.hidden = files.length === 0;
    }
    function add(file) {
      if (files.length >= limit) { notify(t("too_many_files", { n: limit })); return; }
      if (file.size > maxBytes) {
        notify(t("file_too_large", { name: file.name, mb: Math.round(maxBytes / 1048576) }));
        return;
      }
      var entry = { name: file.name, id: null, type: fileKind(file.type || "") };
      files.push(entry);
      draw();
      var form = new FormData();
      form.append("file", file);
      request("POST", "files/upload", form, true).then(function (data) {
        entry.id = data.id;
        draw();
      }, function (error) {
        files.splice(files.indexOf(entry), 1);
        draw();
        failed(error);
      });
    }
    return {
      list: function () {
        if (files.some(function (file) { return !file.id; })) {
          throw new ApiError(400, "uploading", t("still_uploading"));
        }
        return files.map(function (file) {
          return { type: file.type, transfer_method: "local_file", upload_file_id: file.id };
        });
      },
      clear: function () { files = []; draw(); },
    };
  }

  // --- Chat ------------------------------------------------------------------------------

  function Chat() {
    var list = $("#weft-messages");
    var composer = $("#weft-composer");
    var box = $("#weft-query");
    var send = $("#weft-send");
    var stopButton = $("#weft-stop");
    var formBox = $("#weft-inputs");
    var conversations = $("#weft-conversations");
    var form = new InputForm(formBox);
    var attachments = Attachments($("#weft-files"), $("#weft-attach"), $("#weft-file-input"));
    var conversationId = "";
    var task = null; // {id, answer node}

    formBox.hidden = form.empty;
    if (config.site.input_placeholder) box.placeholder = config.site.input_placeholder;

    function scrollDown() { list.scrollTop = list.scrollHeight; }

    function busy(on) {
      send.hidden = on;
      stopButton.hidden = !on;
      box.setAttribute("aria-busy", on ? "true" : "false");
    }

    function opening() {
      list.textContent = "";
      if (params.opening_statement) {
        var intro = el("div", { className: "weft-msg weft-bot weft-opening" });
        var body = el("div", { className: "weft-body" });
        markdownInto(body, params.opening_statement);
        intro.appendChild(body);
        list.appendChild(intro);
      }
      suggestions(params.suggested_questions || []);
    }

    function suggestions(questions) {
      var old = $(".weft-suggestions", list);
      if (old) old.remove();
      if (!questions.length) return;
      var row = el("div", { className: "weft-suggestions", role: "group",
        "aria-label": t("suggested") });
      questions.forEach(function (question) {
        row.appendChild(el("button", { type: "button", className: "weft-suggestion",
          text: question, onclick: function () { ask(question); } }));
      });
      list.appendChild(row);
      scrollDown();
    }

    function userBubble(text) {
      var node = el("div", { className: "weft-msg weft-user" }, [
        el("div", { className: "weft-body", text: text }),
      ]);
      list.appendChild(node);
      return node;
    }

    function botBubble(message) {
      var body = el("div", { className: "weft-body" });
      var thoughts = el("div", { className: "weft-thoughts", hidden: true });
      var sources = el("div", { className: "weft-sources", hidden: true });
      var actions = el("div", { className: "weft-actions", hidden: true });
      var node = el("div", { className: "weft-msg weft-bot" }, [thoughts, body, sources, actions]);
      var view = { node: node, body: body, thoughts: thoughts, sources: sources,
        actions: actions, text: "", error: "", id: message && message.id, rating: null, frame: 0 };
      list.appendChild(node);
      return view;
    }

    function draw(view) {
      if (view.frame) return;
      view.frame = requestAnimationFrame(function () {
        view.frame = 0;
        markdownInto(view.body, view.text);
        // An error stays under what was answered, whatever is drawn after it.
        if (view.error) view.body.appendChild(el("p", { className: "weft-error", text: view.error }));
        scrollDown();
      });
    }

    function showThought(view, thought) {
      if (!thought.tool && !thought.thought) return;
      view.thoughts.hidden = false;
      var id = "thought-" + (thought.id || thought.position);
      var item = view.thoughts.querySelector("[data-id='" + id + "']");
      if (!item) {
        item = el("details", { className: "weft-thought", "data-id": id });
        view.thoughts.appendChild(item);
      }
      item.textContent = "";
      item.appendChild(el("summary", { text: thought.tool ?
        t("used_tool", { tool: thought.tool }) : t("thinking") }));
      if (thought.tool_input) item.appendChild(el("pre", { text: thought.tool_input }));
      if (thought.observation) item.appendChild(el("pre", { text: thought.observation }));
    }

    function showSources(view, resources) {
      view.sources.textContent = "";
      if (!resources || !resources.length) { view.sources.hidden = true; return; }
      var details = el("details", {}, [el("summary", { text: t("sources", { n: resources.length }) })]);
      var ol = el("ol");
      resources.forEach(function (resource) {
        var excerpt = String(resource.content || "");
        if (excerpt.length > 400) excerpt = excerpt.slice(0, 400) + "…";
        ol.appendChild(el("li", {}, [
          el("strong", { text: resource.document_name || resource.dataset_name || t("source") }),
          resource.score !== undefined && resource.score !== null ?
            el("span", { className: "weft-score", text: " · " + Number(resource.score).toFixed(2) }) : null,
          el("p", { text: excerpt }),
        ]));
      });
      details.appendChild(ol);
      view.sources.appendChild(details);
      view.sources.hidden = false;
    }

    function showActions(view) {
      view.actions.textContent = "";
      if (!view.id) return;
      var copy = el("button", { type: "button", text: t("copy"),
        onclick: function () { copyText(view.text, copy); } });
      var like = el("button", { type: "button", text: t("like"),
        "aria-pressed": view.rating === "like" ? "true" : "false",
        onclick: function () { rate(view, view.rating === "like" ? null : "like"); } });
      var dislike = el("button", { type: "button", text: t("dislike"),
        "aria-pressed": view.rating === "dislike" ? "true" : "false",
        onclick: function () { rate(view, view.rating === "dislike" ? null : "dislike"); } });
      view.actions.appendChild(copy);
      view.actions.appendChild(like);
      view.actions.appendChild(dislike);
      view.actions.hidden = false;
    }

    function rate(view, rating) {
      request("POST", "messages/" + view.id + "/feedbacks", { rating: rating }).then(function () {
        view.rating = rating;
        showActions(view);
        notify(rating ? t("thanks") : t("rating_removed"));
      }, failed);
    }

    function ask(query) {
      if (task) return;
      query = String(query || "").trim();
      if (!query) { box.focus(); return; }
      var inputs;
      var files;
      try {
        inputs = form.values();
        files = attachments.list();
      } catch (error) { failed(error); return; }
      quiet();
      var old = $(".weft-suggestions", list);
      if (old) old.remove();
      userBubble(query);
      var view = botBubble(null);
      view.body.appendChild(el("span", { className: "weft-typing", "aria-label": t("thinking") }));
      box.value = "";
      attachments.clear();
      busy(true);
      task = { id: null, view: view, first: !conversationId };
      var current = task;
      Stream.run("chat-messages", {
        inputs: inputs, query: query, conversation_id: conversationId, files: files,
      }, {
        started: function (data) { current.id = data.task_id; },
        event: function (data) { onEvent(current, data); },
        done: function () { finished(current); },
        failed: function (error) {
          view.error = error.message || t("error_generic");
          finished(current);
        },
      });
    }

    function onEvent(current, data) {
      var view = current.view;
      if (!current.id && data.task_id) current.id = data.task_id;
      if (data.message_id) view.id = data.message_id;
      if (data.conversation_id && data.conversation_id !== conversationId) {
        conversationId = data.conversation_id;
        form.lock(true);
      }
      if (data.event === "message" || data.event === "agent_message") {
        view.text += data.answer || "";
        draw(view);
      } else if (data.event === "message_replace") {
        view.text = data.answer || "";
        draw(view);
      } else if (data.event === "agent_thought") {
        showThought(view, data);
      } else if (data.event === "message_end") {
        var meta = data.metadata || {};
        showSources(view, meta.retriever_resources);
      } else if (data.event === "workflow_finished" && !view.text && data.data &&
                 data.data.outputs && data.data.outputs.answer) {
        view.text = String(data.data.outputs.answer);
        draw(view);
      } else if (data.event === "error") {
        view.error = data.message || t("error_generic");
        draw(view);
      }
    }

    function finished(current) {
      if (task !== current) return;
      task = null;
      busy(false);
      var view = current.view;
      var typing = $(".weft-typing", view.body);
      if (typing) typing.remove();
      draw(view);
      showActions(view);
      loadConversations();
      // A new conversation is named by the model just after its first answer.
      if (current.first) setTimeout(loadConversations, 2500);
      if (view.id && params.suggested_questions_after_answer &&
          params.suggested_questions_after_answer.enabled) {
        request("GET", "messages/" + view.id + "/suggested").then(function (data) {
          if (!task) suggestions(data.data || []);
        }, function () {});
      }
      box.focus();
    }

    function stop() {
      if (!task || !task.id) return;
      Stream.stop("chat-messages", task.id).catch(failed);
    }

    // Past conversations.
    function loadConversations() {
      request("GET", "conversations?limit=50").then(function (data) {
        conversations.textContent = "";
        (data.data || []).forEach(function (row) {
          var open = el("button", { type: "button", className: "weft-conv-open",
            text: row.name || t("new_chat"), "aria-current": row.id === conversationId ? "true" : null,
            onclick: function () { openConversation(row.id); } });
          var rename = el("button", { type: "button", className: "weft-conv-act",
            "aria-label": t("rename_named", { name: row.name }), text: "✎",
            onclick: function () {
              var name = window.prompt(t("rename_prompt"), row.name || "");
              if (name === null || !name.trim()) return;
              request("POST", "conversations/" + row.id + "/name", { name: name.trim() })
                .then(loadConversations, failed);
            } });
          var remove = el("button", { type: "button", className: "weft-conv-act",
            "aria-label": t("delete_named", { name: row.name }), text: "✕",
            onclick: function () {
              if (!window.confirm(t("delete_confirm", { name: row.name }))) return;
              request("DELETE", "conversations/" + row.id).then(function () {
                if (row.id === conversationId) newChat();
                loadConversations();
              }, failed);
            } });
          conversations.appendChild(el("li", { className: "weft-conv" }, [open, rename, remove]));
        });
      }, function () {});
    }

    function openConversation(id) {
      if (task) return;
      request("GET", "messages?conversation_id=" + encodeURIComponent(id) + "&limit=100")
        .then(function (data) {
          conversationId = id;
          form.lock(true);
          formBox.hidden = true;
          list.textContent = "";
          (data.data || []).forEach(function (message) {
            userBubble(message.query || "");
            var view = botBubble(message);
            view.text = message.answer || "";
            view.rating = message.feedback ? message.feedback.rating : null;
            (message.agent_thoughts || []).forEach(function (thought) { showThought(view, thought); });
            markdownInto(view.body, view.text);
            showSources(view, message.retriever_resources);
            showActions(view);
          });
          scrollDown();
          loadConversations();
          closeSidebar();
          box.focus();
        }, failed);
    }

    function newChat() {
      if (task) return;
      conversationId = "";
      form.lock(false);
      formBox.hidden = form.empty;
      opening();
      loadConversations();
      closeSidebar();
      box.focus();
    }

    composer.addEventListener("submit", function (event) {
      event.preventDefault();
      ask(box.value);
    });
    box.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        ask(box.value);
      }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && task) stop();
    });
    stopButton.addEventListener("click", stop);
    $("#weft-new-chat").addEventListener("click", newChat);
    opening();
    loadConversations();
    box.focus();
  }

  // --- Completion and workflow apps --------------------------------------------------------

  function Runner() {
    var workflow = config.mode === "workflow";
    var formBox = $("#weft-inputs");
    var form = new InputForm(formBox);
    var query = $("#weft-query");
    var run = $("#weft-run");
    var stopButton = $("#weft-stop");
    var steps = $("#weft-steps");
    var output = $("#weft-output");
    var attachments = Attachments($("#weft-files"), $("#weft-attach"), $("#weft-file-input"));
    var current = null;
    var showSteps = workflow && config.site.show_workflow_steps !== false;
    if (query && workflow) query.parentNode.hidden = true;

    function busy(on) {
      run.hidden = on;
      stopButton.hidden = !on;
      form.lock(on);
    }

    function step(data) {
      if (!showSteps || !data) return;
      steps.hidden = false;
      var id = "step-" + data.id;
      var row = steps.querySelector("[data-id='" + id + "']");
      if (!row) {
        row = el("li", { "data-id": id, className: "weft-step" });
        steps.appendChild(row);
      }
      var status = data.status || "running";
      row.className = "weft-step is-" + status;
      row.textContent = "";
      row.appendChild(el("span", { className: "weft-step-title", text: data.title || data.node_type }));
      row.appendChild(el("span", { className: "weft-step-status", text: t("status_" + status) +
        (data.elapsed_time !== undefined && data.elapsed_time !== null ?
          " · " + Number(data.elapsed_time).toFixed(2) + " s" : "") }));
      if (data.error) row.appendChild(el("p", { className: "weft-error", text: data.error }));
    }

    function showOutputs(outputs) {
      output.textContent = "";
      var keys = Object.keys(outputs || {});
      keys.forEach(function (key) {
        var value = outputs[key];
        var body = el("div", { className: "weft-body" });
        if (typeof value === "string") markdownInto(body, value);
        else body.appendChild(el("pre", { text: JSON.stringify(value, null, 2) }));
        var copy = el("button", { type: "button", text: t("copy"), onclick: function () {
          copyText(typeof value === "string" ? value : JSON.stringify(value, null, 2), copy);
        } });
        output.appendChild(el("section", { className: "weft-output-item" }, [
          keys.length > 1 ? el("h3", { text: key }) : null, body, el("div", { className: "weft-actions" }, [copy]),
        ]));
      });
    }

    function start() {
      if (current) return;
      var inputs;
      var files;
      try {
        inputs = form.values();
        files = attachments.list();
      } catch (error) { failed(error); return; }
      quiet();
      var body = { inputs: inputs, files: files };
      if (!workflow) body.query = query ? query.value : "";
      steps.textContent = "";
      steps.hidden = true;
      output.textContent = "";
      var text = "";
      var live = el("div", { className: "weft-body" });
      output.appendChild(live);
      busy(true);
      current = { id: null };
      var mine = current;
      Stream.run(workflow ? "workflows/run" : "completion-messages", body, {
        started: function (data) { mine.id = data.task_id; },
        event: function (data) {
          if (!mine.id && data.task_id) mine.id = data.task_id;
          if (data.event === "node_started" || data.event === "node_finished") step(data.data);
          else if (data.event === "text_chunk") {
            text += (data.data && data.data.text) || "";
            markdownInto(live, text);
          } else if (data.event === "message") {
            text += data.answer || "";
            markdownInto(live, text);
          } else if (data.event === "message_replace") {
            text = data.answer || "";
            markdownInto(live, text);
          } else if (data.event === "workflow_finished") {
            var result = data.data || {};
            if (result.error) output.appendChild(el("p", { className: "weft-error", text: result.error }));
            else showOutputs(result.outputs);
          } else if (data.event === "error") {
            output.appendChild(el("p", { className: "weft-error", text: data.message || t("error_generic") }));
          }
        },
        done: function () { done(mine); },
        failed: function (error) {
          output.appendChild(el("p", { className: "weft-error", text: error.message }));
          done(mine);
        },
      });
    }

    function done(mine) {
      if (current !== mine) return;
      current = null;
      busy(false);
      attachments.clear();
    }

    $("#weft-run-form").addEventListener("submit", function (event) {
      event.preventDefault();
      start();
    });
    stopButton.addEventListener("click", function () {
      if (current && current.id) {
        Stream.stop(workflow ? "workflows/tasks" : "completion-messages", current.id).catch(failed);
      }
    });
  }

  // --- The page around them ----------------------------------------------------------------

  var sidebar = $("#weft-sidebar");
  function closeSidebar() {
    if (sidebar && root.classList.contains("sidebar-open")) {
      root.classList.remove("sidebar-open");
      $("#weft-menu").setAttribute("aria-expanded", "false");
    }
  }
  var menu = $("#weft-menu");
  if (menu) {
    menu.addEventListener("click", function () {
      var open = root.classList.toggle("sidebar-open");
      menu.setAttribute("aria-expanded", open ? "true" : "false");
      if (open) $("#weft-new-chat").focus();
    });
  }

  // --- Signing in, as the site's access mode asks ------------------------------------------

  var gate = $("#weft-gate");
  var app = $("#weft-app");
  var booted = false;

  function boot() {
    gate.hidden = true;
    if (booted) return;
    booted = true;
    request("GET", "parameters").then(function (data) {
      params = data;
      // Shown and wired in one go: a form shown before its handlers are bound would be
      // submitted by the browser itself, reloading the page and losing what was typed.
      app.hidden = false;
      if (isChat) Chat();
      else Runner();
    }, function (error) {
      if (error.status !== 401) failed(error);
    });
  }

  function signedOut(message) {
    keepPassport(null);
    if (booted) {
      // Signed out mid-session (a new password, an ended membership): start again.
      window.location.reload();
      return;
    }
    showGate(message);
  }

  function showGate(message) {
    app.hidden = true;
    gate.hidden = false;
    var note = $("#weft-gate-error");
    note.textContent = message || "";
    note.hidden = !message;
    var first = gate.querySelector("input:not([type=hidden]):not([disabled])") ||
      gate.querySelector("a, button");
    if (first) first.focus();
  }

  function getPassport(body) {
    return request("POST", "passport", body).then(function (data) {
      if (data && data.passport) {
        keepPassport(data.passport);
        boot();
      }
      return data;
    });
  }

  var gateForm = $("#weft-gate-form");
  if (gateForm) {
    gateForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = {};
      Array.prototype.forEach.call(gateForm.querySelectorAll("input[name]"), function (input) {
        if (!input.disabled && input.value) body[input.name] = input.value;
      });
      var button = gateForm.querySelector("button[type=submit]");
      button.disabled = true;
      getPassport(body).then(function (data) {
        button.disabled = false;
        if (data && data.result === "code_sent") {
          var code = $("#weft-gate-code");
          code.parentNode.hidden = false;
          code.disabled = false;
          code.required = true;
          $("#weft-gate-email").readOnly = true;
          button.textContent = t("sign_in");
          showGate(t("code_sent"));
          code.focus();
        }
      }, function (error) {
        button.disabled = false;
        showGate(error.message);
      });
    });
  }

  if (passport) {
    boot();
  } else if (config.access_mode === "public" ||
             (config.access_mode === "members" && config.signed_in)) {
    getPassport({}).catch(function (error) { showGate(error.message); });
  } else {
    showGate("");
  }
})();
