// The storefront's only script: follow an order's checkout live, post the simulated payment
// without leaving the page, and count down the time left to pay. Every page works without it.
"use strict";

(function () {
  var progress = document.getElementById("progress");
  if (!progress) {
    return;
  }

  // The server sends the progress panel whenever the order moves on, until it settles.
  function follow() {
    var source = new EventSource(progress.dataset.events);
    source.addEventListener("progress", function (event) {
      progress.innerHTML = event.data;
      startCountdowns();
      var status = document.getElementById("order-status");
      if (status && status.dataset.final) {
        source.close();
        refreshCartCount();
      }
    });
  }

  // A confirmed order took its items out of the cart: the header's count follows.
  function refreshCartCount() {
    var count = document.getElementById("cart-count");
    if (!count) {
      return;
    }
    fetch("/api/cart", { credentials: "same-origin" }).then(function (response) {
      if (response.status === 204) {
        return { totalItems: 0 }; // no cart left at all
      }
      return response.ok ? response.json() : null;
    }).then(function (cart) {
      if (cart) {
        var units = cart.totalItems;
        count.textContent = String(units);
        count.setAttribute("aria-label", "Cart: " + units + (units === 1 ? " item" : " items"));
      }
    }).catch(function () {});
  }

  // Pay and Decline are posted in the background; the stream shows what follows.
  progress.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList.contains("live")) {
      return;
    }
    event.preventDefault();
    var buttons = progress.querySelectorAll("form.live button");
    buttons.forEach(function (button) { button.disabled = true; });
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
      redirect: "manual"
    }).then(function (response) {
      if (response.type !== "opaqueredirect" && !response.ok) {
        throw new Error(String(response.status));
      }
    }).catch(function () {
      buttons.forEach(function (button) { button.disabled = false; });
      say("The payment could not be recorded. Reload the page to see the order.");
    });
  });

  function say(text) {
    var note = document.createElement("p");
    note.className = "alert";
    note.setAttribute("role", "alert");
    note.textContent = text;
    progress.appendChild(note);
  }

  // Time left to pay, counted down from what the server said when it sent the panel.
  var ticking = null;
  function startCountdowns() {
    var now = Date.now();
    progress.querySelectorAll(".countdown").forEach(function (element) {
      element.dataset.until = String(now + Number(element.dataset.secondsLeft) * 1000);
    });
    if (ticking === null) {
      ticking = setInterval(tick, 1000);
    }
  }

  function tick() {
    progress.querySelectorAll(".countdown").forEach(function (element) {
      var left = Math.max(0, Math.round((Number(element.dataset.until) - Date.now()) / 1000));
      var seconds = String(left % 60).padStart(2, "0");
      element.textContent = Math.floor(left / 60) + ":" + seconds;
    });
  }

  startCountdowns();
  var status = document.getElementById("order-status");
  if (!(status && status.dataset.final)) {
    follow();
  }
})();
