// The portal's only script: progressive enhancement, everything works without it.
// - "Печать" buttons (hidden without JavaScript) print the page.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".js-print").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
});
