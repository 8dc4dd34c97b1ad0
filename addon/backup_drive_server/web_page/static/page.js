"use strict";
(function () {
  // Dates arrive in UTC; show them in the browser's own time zone and language.
  var format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  document.querySelectorAll("time[datetime]").forEach(function (element) {
    var moment = new Date(element.getAttribute("datetime"));
    if (!isNaN(moment.getTime())) {
      element.title = element.textContent;
      element.textContent = format.format(moment);
      element.classList.add("local");
    }
  });

  var status = document.getElementById("copy-status");
  function copied(button, ok) {
    var label = button.getAttribute("data-label");
    if (status) { status.textContent = ok ? "Copied " + label : "Could not copy " + label; }
    button.textContent = ok ? "Copied" : "Select and copy";
    window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
  }
  // The Clipboard API needs a secure context, which plain-HTTP Home Assistant is not.
  function copyByCommand(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (error) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = button.getAttribute("data-copy");
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { copied(button, true); },
          function () { copied(button, copyByCommand(text)); }
        );
      } else {
        copied(button, copyByCommand(text));
      }
    });
  });
})();
