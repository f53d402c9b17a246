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

  // <select multiple data-picker> becomes a searchable picker (Tom Select, vendored under static/vendor/):
  // type part of a name, pick it with Enter or a click, remove a pick with its ×. Without the library it
  // stays the plain multiple select it is.
  function pickers(root) {
    if (!window.TomSelect) return;
    root.querySelectorAll("select[data-picker]").forEach(function (select) {
      if (select.tomselect) return;
      new window.TomSelect(select, {
        plugins: ["remove_button"],
        maxOptions: null,
        closeAfterSelect: true,
        placeholder: select.getAttribute("data-placeholder") || "",
      });
    });
  }

  // The task board: a card dropped on another column moves there (SortableJS, vendored). The drop fills
  // in the card's own "Move" form and submits it, so the server sees the same request as the keyboard's
  // select + Move button, and htmx swaps in the fresh board.
  function board(root) {
    if (!window.Sortable) return;
    root.querySelectorAll("[data-dropzone]").forEach(function (zone) {
      if (zone.getAttribute("data-sortable") === "1") return;
      zone.setAttribute("data-sortable", "1");
      window.Sortable.create(zone, {
        group: "task-board",
        sort: false,
        draggable: ".card[data-movable]",
        filter: "select, button, input, textarea, label",
        preventOnFilter: false,
        ghostClass: "card-ghost",
        onAdd: function (event) {
          var form = event.item.querySelector("form[data-move]");
          var select = form ? form.querySelector("select[name=status]") : null;
          if (!select) return;
          select.value = event.to.getAttribute("data-dropzone");
          form.requestSubmit ? form.requestSubmit() : form.submit();
        },
      });
    });
  }

  // A move the server refused (the task changed meanwhile, no longer ours): show the board as it is.
  document.addEventListener("htmx:responseError", function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt instanceof HTMLFormElement && elt.hasAttribute("data-move")) {
      window.location.reload();
    }
  });

  function enhance(root) {
    pickers(root);
    board(root);
  }
  if (window.htmx) {
    window.htmx.onLoad(enhance); // the page, then every fragment htmx swaps in
  } else {
    document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  }
})();
