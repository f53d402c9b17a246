// The header's menu button on narrow screens: it opens and closes the navigation (and the user's box).
// Loaded without `defer`: the class set on <html> below lets the stylesheet fold the menu away before the
// first paint. Without this script the menu simply stays open, as on a wide screen.
(function () {
  "use strict";
  document.documentElement.classList.add("has-menu");

  function setOpen(button, menu, open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
    menu.classList.toggle("open", open);
  }

  function wire() {
    var button = document.querySelector("[data-menu-toggle]");
    var menu = button ? document.getElementById(button.getAttribute("aria-controls")) : null;
    if (!button || !menu) return;
    button.addEventListener("click", function () {
      setOpen(button, menu, button.getAttribute("aria-expanded") !== "true");
    });
    // Escape closes the menu from anywhere in it and gives the focus back to the button.
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape" || button.getAttribute("aria-expanded") !== "true") return;
      setOpen(button, menu, false);
      button.focus();
    });
    // A click outside the header closes it too.
    document.addEventListener("click", function (event) {
      var header = button.closest("header");
      if (button.getAttribute("aria-expanded") === "true" && header && !header.contains(event.target)) {
        setOpen(button, menu, false);
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wire);
  } else {
    wire();
  }
})();
