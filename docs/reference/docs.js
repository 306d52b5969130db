// The configuration of the reference page (GET /docs). It lives in a file
// of its own, not inline, so the page runs under a Content-Security-Policy
// of 'self'. The document's URL comes from the page's data-spec-url.
(function () {
  "use strict";
  function start() {
    var node = document.getElementById("swagger-ui");
    window.ui = SwaggerUIBundle({
      url: node.getAttribute("data-spec-url"),
      domNode: node,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      deepLinking: true,
      // No call to the public validator: the page loads from 'self' only.
      validatorUrl: null,
      displayOperationId: false,
      displayRequestDuration: true,
      defaultModelsExpandDepth: 0,
      docExpansion: "list",
      filter: true,
      tryItOutEnabled: false,
      persistAuthorization: false
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
