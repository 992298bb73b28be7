"use strict";
// Stage 3: put images into rank rows by drag and drop or by keyboard; each move is saved.
(() => {
  const board = document.getElementById("ranking");
  const tiers = [...board.querySelectorAll(".tier")]; // tiers[0] is "Unranked", tiers[k] is rank k
  const warnings = document.getElementById("ranking-warnings");

  function showWarnings(result) {
    const items = result.contradictions.map((message) => {
      const item = document.createElement("li");
      item.textContent = message;
      return item;
    });
    warnings.querySelector("ul").replaceChildren(...items);
    warnings.hidden = items.length === 0;
  }

  function moveTo(item, tier) {
    if (item.closest(".tier") === tier) return;
    tier.querySelector(".tier-items").appendChild(item);
    const rank = tier.dataset.rank ? parseInt(tier.dataset.rank, 10) : null;
    Autosave.post(board.dataset.saveBase + item.dataset.imageId, { field: "rank", value: rank })
      .then(showWarnings, () => {});
  }

  board.addEventListener("dragstart", (event) => {
    const item = event.target.closest(".rank-item");
    if (!item) return;
    event.dataTransfer.setData("text/plain", item.dataset.imageId);
    event.dataTransfer.effectAllowed = "move";
    item.classList.add("dragging");
  });
  board.addEventListener("dragend", (event) => {
    const item = event.target.closest(".rank-item");
    if (item) item.classList.remove("dragging");
  });
  for (const tier of tiers) {
    tier.addEventListener("dragover", (event) => {
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      tier.classList.add("over");
    });
    tier.addEventListener("dragleave", () => tier.classList.remove("over"));
    tier.addEventListener("drop", (event) => {
      event.preventDefault();
      tier.classList.remove("over");
      const imageId = event.dataTransfer.getData("text/plain");
      const item = board.querySelector(`.rank-item[data-image-id="${CSS.escape(imageId)}"]`);
      if (item) moveTo(item, tier);
    });
  }

  board.addEventListener("keydown", (event) => {
    const item = event.target.closest(".rank-item");
    if (!item) return;
    const current = tiers.indexOf(item.closest(".tier"));
    let target;
    if (/^[0-9]$/.test(event.key)) target = tiers[parseInt(event.key, 10)];
    else if (event.key === "ArrowUp") target = tiers[current - 1];
    else if (event.key === "ArrowDown") target = tiers[current + 1];
    if (!target) return;
    event.preventDefault();
    moveTo(item, target);
    item.focus();
  });
})();
