// Header menus (<details class="menu">: account, organisation). A <details> opens with Enter or Space but
// nothing closes it except another click on its summary: Escape now closes the open menu and puts focus back
// on its summary, and a click anywhere else closes it, as people expect from a menu.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    const open = document.querySelector("details.menu[open]");
    if (!open) return;
    open.removeAttribute("open");
    const summary = open.querySelector("summary");
    if (summary) summary.focus();
  });
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
})();
