// The progress bar's width from its data-percent: set here because the Content-Security-Policy
// allows no inline style attribute (campaigns.js moves it on while the campaign sends).
(function () {
  "use strict";
  for (const bar of document.querySelectorAll(".progress-bar[data-percent]")) {
    bar.style.width = bar.dataset.percent + "%";
  }
})();
