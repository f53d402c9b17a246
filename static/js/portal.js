// Small progressive enhancements; every page works without them.
(function () {
  "use strict";
  // <select data-autosubmit> submits its form when changed (language switch, filters).
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el instanceof HTMLElement && el.hasAttribute("data-autosubmit") && el.form) {
      el.form.requestSubmit ? el.form.requestSubmit() : el.form.submit();
    }
  });
  // Elements with data-confirm ask before their form is submitted (deleting, ending a membership).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form instanceof HTMLFormElement ? form.getAttribute("data-confirm") : null;
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  }, true);
})();
