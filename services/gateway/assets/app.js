// The dashboard: task list, task submission, a live task page and the pull-request review
// page. Everything the server sends is untrusted text (it includes what the model wrote), so
// the DOM is built with textContent only, never innerHTML.
"use strict";

(function () {
  const view = () => document.getElementById("view");
  let socket = null; // the open task WebSocket, closed on navigation
  let me = null; // who is signed in: {user, role, organisation, csrf_token}
  const RANKS = { viewer: 0, developer: 1, admin: 2 };
  const may = (role) => me && RANKS[me.role] >= RANKS[role];

  // ---- helpers -----------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function banner(message) {
    const node = document.getElementById("banner");
    node.textContent = message || "";
    node.classList.toggle("hidden", !message);
  }

  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || `request failed with HTTP ${status}`);
      this.status = status;
      this.code = error.code;
      this.field = error.field;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    // The session cookie rides along by itself; changes also prove they come from this page.
    if (method !== "GET" && me && me.csrf_token) init.headers["X-CSRF-Token"] = me.csrf_token;
    const response = await fetch(path, init);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (response.status === 401 && path !== "/api/v1/auth/login") {
      // The session ended (expired, signed out elsewhere, revoked): sign in again.
      me = null;
      showSignIn((data && data.error && data.error.message) || "");
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // ---- sign-in -----------------------------------------------------------------------

  function showWhoami() {
    const node = document.getElementById("whoami");
    if (!me) return node.replaceChildren();
    node.replaceChildren(
      el("span", { class: "user" }, me.user),
      " ",
      el("span", { class: `role ${me.role}` }, me.role),
      " ",
      el("button", { type: "button", class: "secondary", onclick: async () => {
        try {
          await api("POST", "/api/v1/auth/logout");
        } catch (_) {
          // Signed out either way.
        }
        me = null;
        showSignIn("");
      } }, "Sign out"),
    );
  }

  function showSignIn(why) {
    showWhoami();
    setNav("");
    const username = el("input", { name: "username", autocomplete: "username", required: true });
    const password = el("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
    const message = el("div", { class: "field-error" }, why);
    const form = el("form", { class: "signin", onsubmit: async (event) => {
      event.preventDefault();
      message.textContent = "";
      try {
        me = await api("POST", "/api/v1/auth/login", { username: username.value.trim(), password: password.value });
        showWhoami();
        route();
      } catch (error) {
        message.textContent = error.message;
      }
    } },
      el("label", {}, "User name", username),
      el("label", {}, "Password", password),
      message,
      el("div", { class: "actions" }, el("button", { type: "submit" }, "Sign in")),
    );
    render(el("section", { class: "panel" }, el("h2", {}, "Sign in"), form, githubSignIn()));
    username.focus();
  }

  // "Sign in with GitHub", when the gateway has it on (the page says so, so a gateway without
  // it is not asked): each scope GitHub will ask for is explained before the browser leaves.
  function githubSignIn() {
    if (document.body.dataset.githubSignin !== "on") return null;
    const box = el("div", { class: "github-signin" }, el("p", { class: "muted" }, "Loading sign-in with GitHub…"));
    api("GET", "/api/v1/auth/github").then((info) => {
      box.replaceChildren(
        el("h3", {}, "Sign in with GitHub"),
        el("p", {}, "GitHub will ask you to grant this platform:"),
        el("ul", { class: "scopes" }, info.scopes.map((scope) =>
          el("li", {}, el("code", {}, scope.scope), ": ", scope.why))),
        el("p", { class: "muted" },
          `A first sign-in makes the account ${info.new_users.name} with the ${info.new_users.role} role.`),
        el("a", { class: "button", href: info.start_url }, "Sign in with GitHub"),
      );
    }).catch((error) => {
      box.replaceChildren(el("div", { class: "field-error" }, `Sign-in with GitHub is unavailable: ${error.message}`));
    });
    return box;
  }

  async function start() {
    try {
      me = await api("GET", "/api/v1/auth/me");
    } catch (error) {
      if (error.status !== 401) failed(error);
      return;
    }
    showWhoami();
    route();
  }

  function status(value) {
    return el("span", { class: `status ${value || ""}` }, value || "unknown");
  }

  function when(value) {
    if (!value) return "";
    const date = new Date(value);
    return isNaN(date) ? value : date.toLocaleString();
  }

  function short(id) {
    return id && id.length > 8 ? id.slice(0, 8) : id || "";
  }

  function setNav(active) {
    document.getElementById("nav-tasks").classList.toggle("active", active === "tasks");
    document.getElementById("nav-prs").classList.toggle("active", active === "prs");
  }

  function render(...nodes) {
    const root = view();
    root.replaceChildren(...nodes);
  }

  // ---- routing -----------------------------------------------------------------------

  function route() {
    if (!me) return;
    if (socket) {
      socket.onclose = null;
      socket.close(1000, "navigated away");
      socket = null;
    }
    banner("");
    const hash = location.hash.replace(/^#/, "") || "/tasks";
    const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
    if (parts[0] === "tasks" && parts[1]) return showTask(parts[1]);
    if (parts[0] === "pull-requests" && parts[1]) return showPullRequest(parts[1]);
    if (parts[0] === "pull-requests") return showPullRequests();
    return showTasks();
  }

  function failed(error) {
    banner(error.message || String(error));
  }

  // ---- tasks -------------------------------------------------------------------------

  async function showTasks() {
    setNav("tasks");
    const list = el("tbody", {}, el("tr", {}, el("td", { colspan: 6, class: "muted" }, "Loading…")));
    render(
      may("developer") ? el("section", { class: "panel" }, el("h2", {}, "New task"), taskForm()) : "",
      el(
        "section",
        { class: "panel" },
        el("h2", {}, "Recent tasks"),
        el(
          "table",
          {},
          el("thead", {}, el("tr", {}, ["Task", "Repository", "Request", "Status", "Progress", "Updated"].map((h) => el("th", {}, h)))),
          list,
        ),
      ),
    );
    try {
      const { tasks } = await api("GET", "/api/v1/tasks");
      list.replaceChildren(
        ...(tasks.length
          ? tasks.map((task) =>
              el(
                "tr",
                {},
                el("td", { class: "mono" }, el("a", { href: `#/tasks/${encodeURIComponent(task.task_id)}` }, short(task.task_id))),
                el("td", {}, task.repository_id),
                el("td", {}, task.prompt.length > 90 ? task.prompt.slice(0, 90) + "…" : task.prompt),
                el("td", {}, status(task.status)),
                el("td", {}, `${task.progress_percentage}%`),
                el("td", { class: "muted" }, when(task.updated_at)),
              ),
            )
          : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No tasks yet."))]),
      );
    } catch (error) {
      failed(error);
    }
  }

  function taskForm() {
    const fields = {
      repository_id: el("input", { name: "repository_id", placeholder: "acme/widgets", required: true }),
      prompt: el("textarea", { name: "prompt", placeholder: "Describe the feature, bug, refactor or docs change", required: true, maxlength: 20000 }),
      priority: el("select", { name: "priority" }, el("option", { value: "low" }, "Background"), el("option", { value: "normal", selected: true }, "Normal"), el("option", { value: "high" }, "Urgent")),
      avoid_files: el("input", { name: "avoid_files", placeholder: "legacy/auth.js, vendor/**" }),
      max_files_changed: el("input", { name: "max_files_changed", type: "number", min: 0, placeholder: "no limit" }),
      test_command: el("input", { name: "test_command", placeholder: "detected when empty" }),
    };
    const message = el("div", { class: "field-error" });
    const submit = el("button", { type: "submit" }, "Submit task");
    const label = (text, input) => el("label", {}, text, input);
    const form = el(
      "form",
      {
        onsubmit: async (event) => {
          event.preventDefault();
          for (const input of Object.values(fields)) input.classList.remove("invalid");
          message.textContent = "";
          const body = {
            repository_id: fields.repository_id.value.trim(),
            prompt: fields.prompt.value,
            priority: fields.priority.value,
          };
          const avoid = fields.avoid_files.value.split(",").map((s) => s.trim()).filter(Boolean);
          const max = fields.max_files_changed.value.trim();
          if (avoid.length || max !== "") {
            body.constraints = {};
            if (avoid.length) body.constraints.avoid_files = avoid;
            if (max !== "") body.constraints.max_files_changed = Number(max);
          }
          if (fields.test_command.value.trim()) body.test_command = fields.test_command.value.trim();
          submit.disabled = true;
          try {
            const created = await api("POST", "/api/v1/tasks", body);
            location.hash = `#/tasks/${encodeURIComponent(created.task_id)}`;
          } catch (error) {
            message.textContent = error.message;
            const name = (error.field || "").replace(/^constraints\./, "").replace(/\[.*$/, "");
            if (fields[name]) fields[name].classList.add("invalid");
          } finally {
            submit.disabled = false;
          }
        },
      },
      label("Repository", fields.repository_id),
      label("Request", fields.prompt),
      el("div", { class: "row" }, label("Priority", fields.priority), label("Avoid files (comma-separated)", fields.avoid_files), label("Max files changed", fields.max_files_changed), label("Test command", fields.test_command)),
      message,
      el("div", { class: "actions" }, submit),
    );
    return form;
  }

  async function showTask(taskId) {
    setNav("tasks");
    const meta = el("dl", { class: "meta" });
    const bar = el("div", {});
    const log = el("div", { class: "log", "aria-live": "polite" });
    const prLink = el("div", {});
    const controls = el("div", { class: "actions" });
    render(
      el("section", { class: "panel" }, el("h2", {}, "Task ", el("span", { class: "mono" }, taskId)), el("div", { class: "progress" }, bar), meta, prLink, controls),
      el("section", { class: "panel" }, el("h2", {}, "Live events"), log),
    );
    const show = (task) => {
      bar.style.width = `${task.progress_percentage}%`;
      const rows = [
        ["Status", status(task.status)],
        ["Agent", task.current_agent || "—"],
        ["Node", task.current_node || "—"],
        ["Progress", `${task.progress_percentage}%`],
        ["Repository", task.repository_id],
        ["Priority", task.priority],
        ["Request", task.prompt],
        ["Branch", task.branch || "—"],
        ["Error", task.error_message || "—"],
        ["Created", when(task.created_at)],
        ["Updated", when(task.updated_at)],
      ];
      meta.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
      // Pause a task in flight; resume a paused one, or retry a failed one, from its last checkpoint.
      const control = (label, cls, action) =>
        el("button", { type: "button", class: cls, onclick: async (click) => {
          click.target.disabled = true;
          try {
            await api("POST", `/api/v1/tasks/${encodeURIComponent(taskId)}/${action}`);
            // A new stream: a failed task's stream has ended; replaying shows the whole log.
            if (action === "resume") return route();
            show(await api("GET", `/api/v1/tasks/${encodeURIComponent(taskId)}`));
          } catch (error) {
            click.target.disabled = false;
            failed(error);
          }
        } }, label);
      controls.replaceChildren(
        ...(!may("developer") ? [] : [
        ...(task.status === "running" || task.status === "queued" ? [control("Pause", "secondary", "interrupt")] : []),
        ...(task.status === "paused" ? [control("Resume", "", "resume")] : []),
        ...(task.status === "failed" ? [control("Retry", "", "resume")] : []),
        ]),
      );
      prLink.replaceChildren(
        task.pull_request_id
          ? el("p", {}, "Pull request: ", el("a", { href: `#/pull-requests/${encodeURIComponent(task.pull_request_id)}` }, task.pull_request_id))
          : "",
      );
    };
    let task;
    try {
      task = await api("GET", `/api/v1/tasks/${encodeURIComponent(taskId)}`);
      show(task);
    } catch (error) {
      return failed(error);
    }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/tasks/${encodeURIComponent(taskId)}/stream`);
    socket.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (_) {
        return;
      }
      const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.append(eventLine(event));
      if (stick) log.scrollTop = log.scrollHeight;
      if (event.event === "task_status") {
        task = Object.assign({}, task, event.data);
        show(task);
      }
    };
    socket.onclose = (close) => {
      log.append(el("div", { class: "entry closed" }, close.code === 1000 ? "— stream ended: task finished —" : `— stream closed (${close.code}${close.reason ? ": " + close.reason : ""}) —`));
      socket = null;
      api("GET", `/api/v1/tasks/${encodeURIComponent(taskId)}`).then(show, failed);
    };
  }

  function eventLine(event) {
    const d = event.data || {};
    let text;
    switch (event.event) {
      case "agent_thought":
        text = `[${d.agent}] ${d.reasoning}`;
        break;
      case "agent_action":
        text = `[${d.agent}] ${d.tool}(${typeof d.arguments === "string" ? d.arguments : JSON.stringify(d.arguments)})`;
        break;
      case "agent_observation":
        text = `[${d.agent}] ${d.tool}${d.is_error ? " failed" : ""}: ${d.content}`;
        break;
      case "file_modified":
        text = `${d.path} ${d.diff_stat.change} +${d.diff_stat.additions} -${d.diff_stat.deletions}`;
        break;
      case "command_executed":
        text = `$ ${d.command}  → exit ${d.exit_code}\n${d.stdout_snippet || ""}`;
        break;
      case "checkpoint_reached":
        text = `${d.type}: ${d.description}`;
        break;
      case "error":
        text = `${d.severity}${d.recoverable ? " (recoverable)" : ""}: ${d.message}`;
        break;
      case "task_status":
        text = `${d.status} ${d.current_agent || ""} ${d.progress_percentage}%`;
        break;
      default:
        text = JSON.stringify(d);
    }
    return el("div", { class: `entry ${event.event}` }, el("span", { class: "seq" }, `#${event.seq}`), el("span", { class: "tag" }, event.event), text);
  }

  // ---- pull requests -----------------------------------------------------------------

  async function showPullRequests() {
    setNav("prs");
    const list = el("tbody", {}, el("tr", {}, el("td", { colspan: 5, class: "muted" }, "Loading…")));
    render(
      el(
        "section",
        { class: "panel" },
        el("h2", {}, "Pull requests"),
        el("table", {}, el("thead", {}, el("tr", {}, ["#", "Repository", "Title", "State", "Updated"].map((h) => el("th", {}, h)))), list),
      ),
    );
    try {
      const { pull_requests } = await api("GET", "/api/v1/pull-requests");
      list.replaceChildren(
        ...(pull_requests.length
          ? pull_requests.map((pr) =>
              el(
                "tr",
                {},
                el("td", { class: "mono" }, el("a", { href: `#/pull-requests/${encodeURIComponent(pr.pull_request_id)}` }, `#${pr.number}`)),
                el("td", {}, pr.repository_id),
                el("td", {}, pr.title),
                el("td", {}, status(pr.state), pr.draft ? status("draft") : ""),
                el("td", { class: "muted" }, when(pr.updated_at)),
              ),
            )
          : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No pull requests yet."))]),
      );
    } catch (error) {
      failed(error);
    }
  }

  async function showPullRequest(prId) {
    setNav("prs");
    render(el("section", { class: "panel" }, el("p", { class: "muted" }, "Loading…")));
    try {
      renderPullRequest(await api("GET", `/api/v1/pull-requests/${encodeURIComponent(prId)}`));
    } catch (error) {
      failed(error);
    }
  }

  function renderPullRequest(pr) {
    const path = `/api/v1/pull-requests/${encodeURIComponent(pr.pull_request_id)}`;
    const pending = []; // line comments of the review being written
    let target = null; // {file, line} picked in the diff
    const targetLabel = el("span", { class: "mono muted" }, "click a line of the diff to comment on it");
    const comment = el("textarea", { placeholder: "Comment on the selected line" });
    const pendingList = el("ul", {});
    const message = el("div", { class: "field-error" });
    const buttons = [];
    const pick = (file, line, node) => {
      target = { file, line };
      targetLabel.textContent = `${file}:${line}`;
      document.querySelectorAll(".diff .picked").forEach((n) => n.classList.remove("picked"));
      node.classList.add("picked");
      comment.focus();
    };
    const addComment = el("button", { type: "button", class: "secondary", onclick: () => {
      message.textContent = "";
      if (!target) return (message.textContent = "Pick a line in the diff first.");
      if (!comment.value.trim()) return (message.textContent = "Write a comment first.");
      pending.push({ file: target.file, line: target.line, body: comment.value.trim() });
      pendingList.append(el("li", {}, el("span", { class: "mono" }, `${target.file}:${target.line}`), " ", comment.value.trim()));
      comment.value = "";
    } }, "Add comment");
    const act = (label, cls, run) => {
      const button = el("button", { type: "button", class: cls, onclick: async () => {
        message.textContent = "";
        buttons.forEach((b) => (b.disabled = true));
        try {
          renderPullRequest(await run());
        } catch (error) {
          message.textContent = error.message;
          buttons.forEach((b) => (b.disabled = false));
        }
      } }, label);
      buttons.push(button);
      return button;
    };
    const review = (action) => () => {
      const body = { action };
      if (pending.length) body.comments = pending;
      return api("POST", `${path}/review`, body);
    };
    const closed = pr.state === "merged" || pr.state === "rejected";
    render(
      el(
        "section",
        { class: "panel" },
        el("h2", {}, `#${pr.number} ${pr.title} `, status(pr.state), pr.draft ? status("draft") : ""),
        el(
          "dl",
          { class: "meta" },
          el("dt", {}, "Repository"), el("dd", {}, pr.repository_id),
          el("dt", {}, "Branches"), el("dd", { class: "mono" }, `${pr.head_branch} → ${pr.base_branch}`),
          el("dt", {}, "Head"), el("dd", { class: "mono" }, pr.head_sha),
          el("dt", {}, "Task"), el("dd", {}, pr.task_id ? el("a", { href: `#/tasks/${encodeURIComponent(pr.task_id)}` }, pr.task_id) : "—"),
          el("dt", {}, "Updated"), el("dd", {}, when(pr.updated_at)),
        ),
        pr.body ? el("p", { class: "pre" }, pr.body) : "",
      ),
      el("section", { class: "panel" }, el("h2", {}, "Changes"), diffView(pr.diff || "", closed ? null : pick)),
      el(
        "section",
        { class: "panel" },
        el("h2", {}, "Review"),
        pr.reviews.length
          ? pr.reviews.map((r) =>
              el(
                "div",
                { class: "review" },
                status(r.action), " ", el("strong", {}, r.reviewer), " ", el("span", { class: "muted" }, when(r.created_at)),
                r.comments.length ? el("ul", {}, r.comments.map((c) => el("li", {}, el("span", { class: "mono" }, `${c.file}:${c.line}`), " ", c.body))) : "",
              ),
            )
          : el("p", { class: "muted" }, "No reviews yet."),
        closed
          ? el("p", { class: "muted" }, `This pull request is ${pr.state}.`)
          : !may("developer")
          ? el("p", { class: "muted" }, "Viewers read reviews; a Developer or Admin reviews.")
          : el(
              "div",
              {},
              el("h3", {}, "Your review"),
              el("p", { class: "muted" }, `Reviewing as ${me.user}.`),
              el("label", {}, el("span", {}, "Comment on ", targetLabel), comment),
              el("div", { class: "actions" }, addComment),
              pendingList,
              message,
              el(
                "div",
                { class: "actions" },
                act("Approve", "approve", review("approve")),
                act("Request changes", "changes", review("request_changes")),
                act("Reject", "reject", review("reject")),
                pr.state === "approved" ? act("Merge", "secondary", () => api("POST", `${path}/merge`)) : "",
              ),
            ),
      ),
    );
  }

  // A unified diff, coloured; lines of the new side can be picked for a comment.
  function diffView(diff, pick) {
    if (!diff) return el("p", { class: "muted" }, "No changes.");
    let file = null;
    let line = 0;
    return el(
      "div",
      { class: "diff" },
      diff.split("\n").map((text) => {
        let cls = "";
        let at = null;
        if (text.startsWith("diff --git")) {
          cls = "file";
        } else if (text.startsWith("+++ ")) {
          cls = "file";
          file = text.slice(4).replace(/^b\//, "");
          if (file === "/dev/null") file = null;
        } else if (text.startsWith("--- ")) {
          cls = "file";
        } else if (text.startsWith("@@")) {
          cls = "hunk";
          const match = /\+(\d+)/.exec(text);
          line = match ? Number(match[1]) : 0;
        } else if (text.startsWith("+")) {
          cls = "add";
          at = line++;
        } else if (text.startsWith("-")) {
          cls = "del";
        } else if (text.startsWith(" ")) {
          at = line++;
        }
        const node = el("div", { class: cls }, text || " ");
        if (pick && file && at) {
          node.classList.add("pickable");
          node.title = `${file}:${at}`;
          node.addEventListener("click", () => pick(file, at, node));
        }
        return node;
      }),
    );
  }

  window.addEventListener("hashchange", route);
  window.addEventListener("DOMContentLoaded", start);
})();
