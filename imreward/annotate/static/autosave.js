"use strict";
// Saves every label change at once, one request after another so that the last change wins.
const Autosave = (() => {
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  let queue = Promise.resolve();

  function showStatus(text, failed) {
    const status = document.getElementById("save-status");
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("failed", Boolean(failed));
  }

  async function send(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`server answered ${response.status}`);
    return response.json();
  }

  let pending = 0;
  let failure = null;

  // "Saved" only once every queued change is saved (an earlier save finishing says nothing of later ones).
  function post(url, body) {
    pending += 1;
    showStatus("Saving…");
    const request = queue.then(() => send(url, body));
    queue = request.then(
      () => {},
      (error) => { failure = error; },
    ).then(() => {
      pending -= 1;
      if (pending > 0) return;
      if (failure) showStatus(`Not saved: ${failure.message}`, true);
      else showStatus("Saved");
      failure = null;
    });
    return request;
  }

  return { post, settled: () => queue };
})();

function fieldValue(input) {
  if (input.type === "checkbox") return input.checked;
  return "int" in input.dataset ? parseInt(input.value, 10) : input.value;
}

document.addEventListener("change", (event) => {
  const input = event.target.closest("[data-field]");
  if (!input) return;
  const owner = input.closest("[data-save-url]");
  Autosave.post(owner.dataset.saveUrl, { field: input.dataset.field, value: fieldValue(input) })
    .catch(() => {});
  if ("dropFlag" in input.dataset) {
    const flagged = document.querySelectorAll("[data-drop-flag]:checked").length > 0;
    document.querySelectorAll("[data-show-when-flagged]").forEach((el) => { el.hidden = !flagged; });
  }
});

// On a rating scale, the digit keys pick the value directly.
document.addEventListener("keydown", (event) => {
  const scale = event.target.closest && event.target.closest(".scale");
  if (!scale || !/^[1-7]$/.test(event.key)) return;
  const radio = scale.querySelector(`input[value="${event.key}"]`);
  event.preventDefault();
  radio.focus();
  if (!radio.checked) {
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
  }
});

// Links and forms that leave the page wait until every change is saved.
document.addEventListener("click", async (event) => {
  const link = event.target.closest("a[data-next]");
  if (!link) return;
  event.preventDefault();
  await Autosave.settled();
  window.location.assign(link.href);
});

document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-after-saves]");
  if (!form) return;
  event.preventDefault();
  await Autosave.settled();
  form.submit();
});
