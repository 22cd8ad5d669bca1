// The admin center's script: nothing the pages need to work without it.
// It moves the focus to a page's error or confirmation, so that a screen
// reader says it first, and polls a running operation's status until it
// finishes, then reloads its page.
document.addEventListener("DOMContentLoaded", function () {
  var note = document.getElementById("error") || document.getElementById("done");
  if (note) {
    note.setAttribute("tabindex", "-1");
    note.focus();
  }
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
