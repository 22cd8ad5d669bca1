// The admin center's script: nothing the pages need to work without it.
// It moves the focus to a page's error or confirmation, so that a screen
// reader says it first, and polls a running operation's status until it
// finishes, then reloads its page; an environment's page does the same
// for each of its running operations ([data-poll]), showing done of total.
document.addEventListener("DOMContentLoaded", function () {
  var note = document.getElementById("error") || document.getElementById("done");
  if (note) {
    note.setAttribute("tabindex", "-1");
    note.focus();
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-poll]"), function (card) {
    var url = card.getAttribute("data-poll");
    function set(cls, text) {
      var el = card.querySelector("." + cls);
      if (el) { el.textContent = text; }
    }
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          set("envop-state", s.state + (s.phase ? " (" + s.phase + ")" : ""));
          set("envop-step", s.step);
          set("envop-count", s.total ? s.count + " of " + s.total : s.count + ", still counting");
          var bar = card.querySelector(".envop-progress");
          if (bar) { bar.value = s.percent; }
          if (s.done) {
            window.location.reload();
          } else {
            setTimeout(poll, 1000);
          }
        })
        .catch(function () { setTimeout(poll, 3000); });
    }
    setTimeout(poll, 1000);
  });
  var op = document.getElementById("op");
  if (!op || op.getAttribute("data-finished") !== "false") {
    return;
  }
  var url = op.getAttribute("data-status");
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        document.getElementById("op-state").textContent = s.state + (s.phase ? " (" + s.phase + ")" : "");
        document.getElementById("op-step").textContent = s.step;
        document.getElementById("op-progress").value = s.percent;
        document.getElementById("op-percent").textContent = s.percent + "%";
        if (s.done) {
          window.location.reload();
        } else {
          setTimeout(poll, 1000);
        }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 500);
});
