// The lending list: a header checkbox <input data-select-all="NAME"> ticks every checkbox named NAME.
// Only a convenience: each booking's own checkbox works without it.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement) || !box.hasAttribute("data-select-all")) {
      return;
    }
    var name = box.getAttribute("data-select-all");
    document.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (each) {
      each.checked = box.checked;
    });
  });
})();
