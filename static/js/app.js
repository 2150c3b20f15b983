// Relevo's own few lines of script. No inline script anywhere: the
// Content-Security-Policy forbids it, so behaviour is attached here.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Every htmx request carries the session's CSRF token.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  // Shows a short message in the toast area (role=status, so it is announced).
  function toast(message, kind) {
    var area = document.getElementById("toasts");
    if (!area || !message) return;
    var item = document.createElement("div");
    item.className = "toast toast-" + (kind || "success");
    item.textContent = message;
    area.appendChild(item);
    window.setTimeout(function () { item.remove(); }, 5000);
  }
  window.relevoToast = toast;

  // Folio -> when this tab last confirmed an action on it (see below).
  window.relevoActedOn = {};

  // Server-sent toasts: `HX-Trigger: {"relevo:toast": {"message": "…"}}`.
  document.addEventListener("relevo:toast", function (event) {
    toast(event.detail && event.detail.message, event.detail && event.detail.kind);
  });

  // An htmx request that failed shows its Spanish error as a toast instead of
  // silently doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var text = "";
    try {
      var doc = new DOMParser().parseFromString(event.detail.xhr.responseText, "text/html");
      var alert = doc.querySelector(".alert-error, .error-panel p:not(.error-code)");
      text = alert ? alert.textContent.trim() : "";
    } catch (e) { /* fall through to the generic text */ }
    toast(text || "No se pudo completar la acción. Inténtalo de nuevo.", "error");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Sin conexión con el servidor. Revisa tu red e inténtalo de nuevo.", "error");
  });
})();

// The Cancelar/Reasignar dialog: a native <dialog> whose content htmx fetches
// into #modal-content. Focus moves in, Tab stays inside, Escape closes, and
// focus returns to the button that opened it.
(function () {
  "use strict";
  var dialog = null;
  var opener = null;

  function focusable(root) {
    return Array.prototype.filter.call(
      root.querySelectorAll('a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])'),
      function (el) { return el.offsetParent !== null || el === document.activeElement; }
    );
  }

  function firstField() {
    var summary = dialog.querySelector(".error-summary");
    if (summary) return summary;
    var invalid = dialog.querySelector('[aria-invalid="true"]');
    if (invalid) return invalid;
    var checked = dialog.querySelector('input[name="accion"]:checked');
    return checked || focusable(dialog)[0];
  }

  // The last messages above the form start scrolled to the newest.
  function showNewestMessages(root) {
    var list = root && root.querySelector(".recent-messages .chat");
    if (list) list.scrollTop = list.scrollHeight;
  }
  document.addEventListener("DOMContentLoaded", function () { showNewestMessages(document); });

  function open(trigger) {
    dialog = document.getElementById("modal");
    if (!dialog) return;
    if (trigger) opener = trigger;
    if (!dialog.open) dialog.showModal();
    showNewestMessages(dialog);
    var target = firstField();
    if (target) target.focus();
  }

  function close() {
    if (dialog && dialog.open) dialog.close();
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.classList && elt.classList.contains("action-button")) opener = elt;
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "modal-content") open(null);
  });

  // The row an administrator acts on keeps showing its new state (as the
  // server re-renders it) for a few seconds even if that state leaves the
  // current filter: the live table would otherwise remove it before, or
  // right after, the confirmation shows it. Other viewers see it leave at
  // once; here it leaves with the next change or reload after that.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.closest || !form.closest("#modal")) return;
    var match = /\/mensajes\/(\d+)\/acciones/.exec(form.getAttribute("action") || "");
    if (match) window.relevoActedOn[match[1]] = Date.now();
  }, true);

  document.addEventListener("relevo:closeModal", function (event) {
    close();
    // The row was re-rendered: focus its new action button, or the folio link.
    var folio = event.detail && event.detail.folio;
    var row = folio && document.getElementById("conversacion-" + folio);
    if (row) {
      row.classList.add("row-flash");
      var target = row.querySelector(".action-button, .col-folio a");
      if (target) target.focus();
      opener = null;
    }
  });

  // Choosing a disconnected agent shows, at once, that the conversation will
  // wait for them and asks to confirm it (the server insists on it too).
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!select || select.id !== "accion-agente") return;
    var box = document.getElementById("aviso-desconectado");
    if (!box) return;
    var chosen = select.options[select.selectedIndex];
    box.hidden = !(chosen && chosen.hasAttribute("data-offline"));
  });

  // A link of the error summary moves focus to its field (a fragment link
  // alone would only scroll, and inside the dialog change the address).
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest(".error-summary a[href^='#']");
    if (!link) return;
    var field = document.getElementById(link.getAttribute("href").slice(1));
    if (!field) return;
    event.preventDefault();
    field.focus();
    var label = document.querySelector('label[for="' + field.id + '"]');
    (label || field).scrollIntoView({ block: "center" });
  });

  document.addEventListener("click", function (event) {
    var closer = event.target.closest && event.target.closest("[data-close-modal]");
    if (closer) { event.preventDefault(); close(); return; }
    // A click on the backdrop (outside the dialog's box) closes it too.
    if (event.target.id === "modal") {
      var box = event.target.getBoundingClientRect();
      var inside = event.clientX >= box.left && event.clientX <= box.right &&
        event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) close();
    }
  });

  document.addEventListener("keydown", function (event) {
    // Space activates the icon links that act as buttons.
    if (event.key === " " && event.target.matches && event.target.matches('a[role="button"]')) {
      event.preventDefault();
      event.target.click();
      return;
    }
    if (!dialog || !dialog.open || event.key !== "Tab") return;
    var items = focusable(dialog);
    if (items.length === 0) return;
    var first = items[0];
    var last = items[items.length - 1];
    if (event.shiftKey && (document.activeElement === first || !dialog.contains(document.activeElement))) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !dialog.contains(document.activeElement))) {
      event.preventDefault();
      first.focus();
    }
  });

  document.addEventListener("close", function (event) {
    if (event.target.id !== "modal") return;
    var content = document.getElementById("modal-content");
    if (content) content.replaceChildren();
    if (opener && document.body.contains(opener)) opener.focus();
    opener = null;
  }, true);

  // Comment counter: characters as people count them (an emoji is one).
  document.addEventListener("input", function (event) {
    var area = event.target;
    if (!area.matches || !area.matches("textarea[data-max-chars]")) return;
    var max = parseInt(area.getAttribute("data-max-chars"), 10);
    var count = Array.from(area.value.trim()).length;
    var field = area.closest(".field");
    var counter = field && field.querySelector("[data-char-count]");
    if (counter) counter.textContent = String(count);
    if (field) field.classList.toggle("is-over", count > max);
  });
})();

// The live table: one EventSource per tab. Each change names a conversation;
// changes are batched, then /mensajes/cambios answers, for the current
// filters, the rows to re-render (the others leave) and the new counts.
// After a dropped connection the visible page is reloaded in place, so no
// change stays invisible. Filters, scroll, focus and an open modal survive.
(function () {
  "use strict";
  var indicator = document.getElementById("live-indicator");
  if (!indicator || !window.EventSource) return;
  var pending = new Set();
  var timer = null;
  var source = null;
  var down = false;

  function setLive(live) {
    indicator.classList.toggle("is-live", live);
    indicator.classList.toggle("is-offline", !live);
    indicator.textContent = live ? "En vivo" : "Sin conexión: reconectando…";
  }

  // A row this tab acted on in the last few seconds stays (see the modal).
  var ACTED_KEEP_MS = 8000;
  function actedOnRecently(row) {
    var at = window.relevoActedOn && window.relevoActedOn[row.getAttribute("data-folio")];
    return !!at && Date.now() - at < ACTED_KEEP_MS;
  }

  function isFirstPage() {
    return !/[?&](despues|antes)=/.test(location.search);
  }

  function resync() {
    pending.clear();
    if (window.htmx && document.getElementById("results")) {
      window.htmx.ajax("GET", location.pathname + location.search, { target: "#results", swap: "outerHTML" });
    }
  }

  function flash(row) {
    row.classList.remove("row-flash");
    void row.offsetWidth; // restart the animation
    row.classList.add("row-flash");
  }

  function replaceRow(old, html) {
    var holder = document.createElement("tbody");
    holder.innerHTML = html;
    var fresh = holder.firstElementChild;
    if (!fresh) return;
    // Keep keyboard focus on the equivalent control of the new row.
    var focused = old.contains(document.activeElement) ? document.activeElement : null;
    var focusClass = focused && (focused.classList.contains("action-button") ? ".action-button" : ".col-folio a");
    old.replaceWith(fresh);
    if (window.htmx) window.htmx.process(fresh);
    flash(fresh);
    if (focusClass) {
      var target = fresh.querySelector(focusClass) || fresh.querySelector(".col-folio a");
      if (target) target.focus();
    }
  }

  // The rows in the page's order (Orden): by their key in that order, then
  // folio. A row whose key moved before the page's first row (when there is
  // a previous page) or past its last (when there is a next one) belongs to
  // another page and leaves this one, unless this tab just acted on it.
  function place(tbody) {
    var order = tbody.getAttribute("data-order") || "reciente";
    var attr = order === "en-estatus" ? "data-status-key" : "data-activity-key";
    var descending = order === "reciente";
    function parse(text) {
      var parts = String(text || "0.0").split(".");
      return [Number(parts[0]), Number(parts[1])];
    }
    function compare(a, b) {
      var c = a[0] - b[0] || a[1] - b[1];
      return descending ? -c : c;
    }
    var first = tbody.getAttribute("data-first-key");
    var last = tbody.getAttribute("data-last-key");
    var rows = Array.prototype.slice.call(tbody.children);
    rows.forEach(function (row) {
      var key = parse(row.getAttribute(attr));
      var outside = (first && compare(key, parse(first)) < 0) || (last && compare(key, parse(last)) > 0);
      if (outside && !actedOnRecently(row)) {
        if (row.contains(document.activeElement)) document.getElementById("main").focus();
        row.remove();
      }
    });
    rows = Array.prototype.slice.call(tbody.children);
    var sorted = rows.slice().sort(function (a, b) {
      return compare(parse(a.getAttribute(attr)), parse(b.getAttribute(attr)));
    });
    if (sorted.every(function (row, i) { return row === rows[i]; })) return;
    var focused = document.activeElement;
    sorted.forEach(function (row) { tbody.appendChild(row); });
    if (focused && tbody.contains(focused)) focused.focus();
  }

  function apply(ids, answer) {
    var tbody = document.getElementById("rows");
    if (!tbody) return;
    var matched = {};
    answer.rows.forEach(function (r) { matched[r.id] = r; });
    // Newest first: insert in reverse so the newest ends on top.
    var fresh = [];
    ids.forEach(function (id) {
      var row = tbody.querySelector('tr[data-id="' + id + '"]');
      var m = matched[id];
      if (row && m) replaceRow(row, m.html);
      else if (row && !m && actedOnRecently(row)) return;
      else if (row && !m) {
        if (row.contains(document.activeElement)) document.getElementById("main").focus();
        row.remove();
      } else if (!row && m && isFirstPage()) fresh.push(m);
    });
    fresh.reverse().forEach(function (m) {
      var holder = document.createElement("tbody");
      holder.innerHTML = m.html;
      var tr = holder.firstElementChild;
      if (!tr) return;
      tbody.insertBefore(tr, tbody.firstElementChild);
      if (window.htmx) window.htmx.process(tr);
      flash(tr);
    });
    place(tbody);
    var tabs = document.getElementById("status-tabs");
    if (tabs && answer.tabs) {
      tabs.innerHTML = answer.tabs;
      if (window.htmx) window.htmx.process(tabs);
    }
    var empty = document.querySelector("#results .empty-state");
    if (empty && tbody.children.length > 0) empty.remove();
  }

  // The rows of `ids` as the current filters show them, and the counts.
  function fetchChanges(ids) {
    var params = new URLSearchParams(location.search);
    params.delete("despues");
    params.delete("antes");
    ids.forEach(function (id) { params.append("id", id); });
    fetch("/mensajes/cambios?" + params.toString(), { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.redirected || !r.ok) throw new Error("changes " + r.status);
        return r.json();
      })
      .then(function (answer) { apply(ids, answer); })
      .catch(function () { resync(); });
  }

  function flush() {
    timer = null;
    var ids = Array.from(pending).slice(0, 100);
    ids.forEach(function (id) { pending.delete(id); });
    if (ids.length === 0) return;
    fetchChanges(ids);
    if (pending.size > 0) timer = window.setTimeout(flush, 150);
  }

  // A conversation becomes "rezagada" by time alone, and no change
  // announces it: while the tab is visible and live, its counts are asked
  // for again every minute (without ids, /mensajes/cambios answers only the
  // counts). A change arriving meanwhile refreshes them anyway.
  var countsEvery = parseInt(indicator.getAttribute("data-counts-every"), 10) || 60000;
  window.setInterval(function () {
    if (document.visibilityState !== "visible" || down || timer) return;
    if (document.getElementById("status-tabs")) fetchChanges([]);
  }, countsEvery);

  function connect() {
    source = new EventSource(indicator.getAttribute("data-live-stream"));
    source.addEventListener("hello", function () {
      setLive(true);
      if (down) resync();
      down = false;
    });
    source.addEventListener("change", function (event) {
      try { pending.add(JSON.parse(event.data).id); } catch (e) { return; }
      if (!timer) timer = window.setTimeout(flush, 120);
    });
    source.addEventListener("resync", function () {
      setLive(true);
      resync();
    });
    source.addEventListener("offline", function () {
      setLive(false);
      down = true;
    });
    // The server is going away: reconnect shortly (a load balancer sends us
    // to another instance), then reload what is shown.
    source.addEventListener("reconnect", function () {
      source.close();
      setLive(false);
      down = true;
      window.setTimeout(connect, 500 + Math.random() * 1500);
    });
    source.addEventListener("expired", function () { source.close(); location.reload(); });
    source.onerror = function () {
      setLive(false);
      down = true;
      // A stream that ended for good (e.g. the server answered a page) is
      // not retried by the browser: try again ourselves.
      if (source.readyState === EventSource.CLOSED) window.setTimeout(connect, 3000);
    };
  }

  // The stream is global to the page; a results swap keeps it.
  connect();
  window.addEventListener("beforeunload", function () { if (source) source.close(); });
})();

// Relative times ("hace 3 min") stay current without a reload; the same
// wording as the server's `relative()`.
(function () {
  "use strict";
  function relative(iso, now) {
    var seconds = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
    if (seconds < 5) return "ahora";
    if (seconds < 60) return "hace " + seconds + " s";
    if (seconds < 3600) return "hace " + Math.floor(seconds / 60) + " min";
    if (seconds < 86400) return "hace " + Math.floor(seconds / 3600) + " h";
    return "hace " + Math.floor(seconds / 86400) + " d";
  }
  // "Sin actividad: 2 h 10 min": the server's `elapsed()`.
  function elapsed(iso, now) {
    var minutes = Math.max(0, Math.floor((now - Date.parse(iso)) / 60000));
    var days = Math.floor(minutes / 1440), hours = Math.floor(minutes / 60) % 24, mins = minutes % 60;
    if (days > 0) return hours > 0 ? days + " d " + hours + " h" : days + " d";
    if (hours > 0) return mins > 0 ? hours + " h " + mins + " min" : hours + " h";
    return mins > 0 ? mins + " min" : "< 1 min";
  }
  function refresh() {
    var now = Date.now();
    document.querySelectorAll("[data-relative-time]").forEach(function (el) {
      var text = relative(el.getAttribute("data-relative-time"), now);
      if (el.textContent !== text) el.textContent = text;
    });
    document.querySelectorAll("[data-elapsed-since]").forEach(function (el) {
      var text = elapsed(el.getAttribute("data-elapsed-since"), now);
      if (el.textContent !== text) el.textContent = text;
    });
  }
  window.setInterval(refresh, 10000);
})();

// Reports and bulk: row selection on Mensajes for the bulk bar, and the
// drill-down toggles of the Reportes roll-up table. The selection is kept by
// folio, so a row the live table re-renders keeps its checkbox; a row that
// leaves the table, or becomes final (its checkbox disabled), leaves the
// selection too, and the count always says what will be sent.
(function () {
  "use strict";
  var selected = new Set();

  function boxes() {
    return Array.prototype.slice.call(document.querySelectorAll("#rows input.row-select"));
  }

  function refresh() {
    var bar = document.getElementById("bulk-form");
    if (!bar) return;
    var present = new Set();
    boxes().forEach(function (box) {
      if (box.disabled) { box.checked = false; return; }
      if (selected.has(box.value)) box.checked = true;
      if (box.checked) present.add(box.value);
    });
    selected = present;
    var n = selected.size;
    var count = bar.querySelector("[data-bulk-count]");
    var submit = bar.querySelector("[data-bulk-submit]");
    bar.classList.toggle("has-selection", n > 0);
    if (count) {
      count.textContent = n === 0
        ? "Marca conversaciones para actuar sobre varias a la vez"
        : (n === 1 ? "1 conversación seleccionada" : n + " conversaciones seleccionadas");
    }
    if (submit) submit.disabled = n === 0;
    var all = document.querySelector("[data-select-page]");
    if (all) {
      var enabled = boxes().filter(function (b) { return !b.disabled; });
      all.hidden = enabled.length === 0;
      all.checked = enabled.length > 0 && enabled.every(function (b) { return b.checked; });
      all.indeterminate = n > 0 && !all.checked;
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target.matches) return;
    if (target.matches("input.row-select")) {
      if (target.checked) selected.add(target.value); else selected.delete(target.value);
      refresh();
    } else if (target.matches("[data-select-page]")) {
      boxes().forEach(function (box) {
        if (box.disabled) return;
        box.checked = target.checked;
        if (target.checked) selected.add(box.value); else selected.delete(box.value);
      });
      refresh();
    }
  });

  // Rows are replaced by the live table and by htmx swaps: re-apply the
  // selection to whatever rows are there now.
  var pending = false;
  new MutationObserver(function () {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; refresh(); });
  }).observe(document.body, { childList: true, subtree: true });
  refresh();

  // Reportes: each category row folds its sub-categories. Without script
  // every row is shown (the buttons stay hidden).
  document.querySelectorAll("[data-rollup-toggle]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", String(open));
      var children = document.getElementById(button.getAttribute("aria-controls"));
      if (children) children.hidden = !open;
    });
  });
})();

// Narrow screens (issue 22, item 10): the "Menú" disclosure of the top bar
// works without this; with it, Escape closes the open menu (focus back on
// "Menú") and so does a click anywhere outside the bar.
(function () {
  "use strict";
  function openMenu() { return document.querySelector(".menu-toggle[open]"); }
  document.addEventListener("keydown", function (event) {
    var menu = openMenu();
    if (event.key !== "Escape" || !menu || document.querySelector("dialog[open]")) return;
    menu.open = false;
    menu.querySelector("summary").focus();
  });
  document.addEventListener("click", function (event) {
    var menu = openMenu();
    if (menu && !event.target.closest(".sidebar")) menu.open = false;
  });
})();
