// The admin center's script: nothing the pages need to work. It moves
// the focus to a page's error or confirmation, so that a screen reader
// says it first.
document.addEventListener("DOMContentLoaded", function () {
  var note = document.getElementById("error") || document.getElementById("done");
  if (note) {
    note.setAttribute("tabindex", "-1");
    note.focus();
  }
});
