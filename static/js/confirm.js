/* Mis-send prevention (issue 16): on the New transfer page, before Send starts anything, the sender ticks each
   recipient address the policy asks to confirm (outside addresses marked) in a modal dialog; the ticked
   addresses go with the form (send.js posts every checked "confirmed_recipients"), and the server refuses a send
   whose confirmed list is not exactly those recipients. On a transfer's page: the hold's countdown.

   Loaded before send.js, and listening in the capture phase, so its submit check runs first: until the
   current recipients are confirmed, send.js never sees the submit. */
(function () {
  "use strict";

  var SEPARATORS = /[\s,;]+/;

  function countdown() {
    var timer = document.getElementById("hold-countdown");
    if (!timer) {
      return;
    }
    var endsAt = Date.now() + Number(timer.getAttribute("data-seconds")) * 1000;
    function tick() {
      var left = Math.max(0, Math.ceil((endsAt - Date.now()) / 1000));
      if (left === 0) {
        timer.textContent = timer.getAttribute("data-ended");
        return;
      }
      var minutes = Math.floor(left / 60);
      var seconds = left % 60;
      timer.textContent = minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
      window.setTimeout(tick, 1000);
    }
    tick();
  }

  function dialogSetUp() {
    var configElement = document.getElementById("confirm-config");
    var form = document.getElementById("transfer-form");
    var dialog = document.getElementById("confirm-dialog");
    if (!configElement || !form || !dialog || typeof dialog.showModal !== "function") {
      return; // no dialog: the server still refuses an unconfirmed send, with the reason at the field
    }
    var config = JSON.parse(configElement.textContent);
    var text = config.strings;
    var list = document.getElementById("confirm-list");
    var sendButton = document.getElementById("confirm-send");
    var backButton = document.getElementById("confirm-back");
    var recipientsField = form.querySelector("[name=recipients]");
    var confirmedFor = null; // the address list (as a key) the ticks were given for

    function internal(address) {
      var domain = address.slice(address.lastIndexOf("@") + 1).toLowerCase().replace(/\.$/, "");
      return config.internalDomains.some(function (entry) {
        return entry && (domain === entry || domain.slice(-(entry.length + 1)) === "." + entry);
      });
    }

    /* The recipients as the server reads them: split, trimmed, duplicates (case aside) dropped, domain in
       lower case; only well-formed ones (the server names a malformed one at the field). */
    function recipients() {
      var seen = {};
      var found = [];
      (recipientsField.value || "").split(SEPARATORS).forEach(function (raw) {
        var at = raw.lastIndexOf("@");
        if (at < 1 || at === raw.length - 1) {
          return;
        }
        var address = raw.slice(0, at) + "@" + raw.slice(at + 1).toLowerCase();
        var key = address.toLowerCase();
        if (!seen[key]) {
          seen[key] = true;
          found.push(address);
        }
      });
      return found;
    }

    function toConfirm() {
      var all = recipients();
      return config.policy === "all" ? all : all.filter(function (a) { return !internal(a); });
    }

    function keyOf(addresses) {
      return addresses.join("\n").toLowerCase();
    }

    function boxes() {
      return Array.prototype.slice.call(list.querySelectorAll("input[type=checkbox]"));
    }

    function update() {
      sendButton.disabled = !boxes().every(function (box) { return box.checked; });
    }

    function fill(addresses) {
      list.textContent = "";
      addresses.forEach(function (address, index) {
        var outside = !internal(address);
        var item = document.createElement("li");
        item.className = outside ? "confirm-item outside" : "confirm-item";
        var box = document.createElement("input");
        box.type = "checkbox";
        box.name = "confirmed_recipients";
        box.value = address;
        box.id = "confirm-" + index;
        box.setAttribute("aria-label", text.confirm.replace("%(email)s", address));
        box.addEventListener("change", update);
        var label = document.createElement("label");
        label.htmlFor = box.id;
        var at = address.lastIndexOf("@");
        var local = document.createElement("span");
        local.textContent = address.slice(0, at + 1);
        var domain = document.createElement(outside ? "strong" : "span");
        domain.className = "confirm-domain";
        domain.textContent = address.slice(at + 1);
        label.appendChild(local);
        label.appendChild(domain);
        var badge = document.createElement("span");
        badge.className = outside ? "badge badge-outside" : "badge";
        badge.textContent = outside ? text.outside : text.inside;
        label.appendChild(document.createTextNode(" "));
        label.appendChild(badge);
        item.appendChild(box);
        item.appendChild(label);
        list.appendChild(item);
      });
      update();
    }

    form.addEventListener(
      "submit",
      function (event) {
        var addresses = toConfirm();
        if (!addresses.length || confirmedFor === keyOf(addresses)) {
          return; // nothing to confirm, or confirmed just now: send.js takes it from here
        }
        event.preventDefault();
        event.stopImmediatePropagation();
        confirmedFor = null;
        fill(addresses);
        dialog.showModal();
        var first = boxes()[0];
        if (first) {
          first.focus();
        }
      },
      true
    );

    sendButton.addEventListener("click", function () {
      if (sendButton.disabled) {
        return;
      }
      confirmedFor = keyOf(boxes().map(function (box) { return box.value; }));
      dialog.close();
      if (typeof form.requestSubmit === "function") {
        form.requestSubmit();
      } else {
        form.dispatchEvent(new Event("submit", { cancelable: true }));
      }
    });

    function back() {
      dialog.close();
      list.textContent = ""; // unticked: nothing confirmed goes with the form
      recipientsField.focus();
    }
    backButton.addEventListener("click", back);
    dialog.addEventListener("cancel", function (event) {
      event.preventDefault(); // Escape: back to the form, the same as the button
      back();
    });
    // Edited after confirming: ask again on the next Send.
    recipientsField.addEventListener("input", function () {
      confirmedFor = null;
    });
  }

  function start() {
    countdown();
    dialogSetUp();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
