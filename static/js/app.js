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
