/* P360 resumable uploader: drives the vendored tus-js-client from templates/uploads/_dropzone.html.
 *
 * No build step. Each [data-uploader] element becomes a drop zone with a keyboard-accessible picker,
 * a progress bar with percent, speed and ETA, pause/resume/cancel, automatic retries (and a resume
 * when the browser comes back online), and resume after a reload: tus-js-client remembers the upload
 * URL under the file's fingerprint (name, type, size, modification time, endpoint), so choosing the
 * same file again continues where it stopped.
 */
(function () {
  "use strict";

  var RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000];

  function humanBytes(n) {
    if (n < 1024) return n + " B";
    var units = ["KB", "MB", "GB", "TB"];
    var value = n;
    var unit = -1;
    do { value /= 1024; unit += 1; } while (value >= 1024 && unit < units.length - 1);
    return value.toFixed(value < 10 ? 1 : 0) + " " + units[unit];
  }

  function humanDuration(seconds) {
    if (!isFinite(seconds) || seconds < 0) return "";
    seconds = Math.round(seconds);
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + (seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function extensionOf(name) {
    var dot = name.lastIndexOf(".");
    return dot < 0 ? "" : name.slice(dot).toLowerCase();
  }

  /* The message of the server's JSON error body ({"error": {"message": ...}}), else a plain one. */
  function serverMessage(err) {
    var response = err && err.originalResponse;
    if (response) {
      try {
        var body = JSON.parse(response.getBody() || "{}");
        if (body && body.error && body.error.message) return body.error.message;
      } catch (e) { /* not JSON */ }
      var status = response.getStatus();
      if (status) return "The server answered " + status + ".";
    }
    if (!navigator.onLine) return "You are offline.";
    return "The connection to the server failed.";
  }

  function Uploader(root) {
    this.root = root;
    this.endpoint = root.dataset.endpoint;
    this.purpose = root.dataset.purpose || "";
    this.accept = (root.dataset.accept || "").split(",").map(function (s) { return s.trim().toLowerCase(); }).filter(Boolean);
    this.next = root.dataset.next || "";
    this.maxBytes = parseInt(root.dataset.maxBytes || "0", 10);
    this.chunkSize = parseInt(root.dataset.chunkSize || "8388608", 10);
    this.csrf = root.dataset.csrf || "";
    this.el = {};
    var self = this;
    root.querySelectorAll("[data-role]").forEach(function (node) { self.el[node.dataset.role] = node; });
    this.upload = null;
    this.file = null;
    this.paused = false;
    this.waitingForNetwork = false;
    this.samples = [];
    this.bind();
    this.showResumable();
  }

  Uploader.prototype.bind = function () {
    var self = this;
    var zone = this.el.zone;
    this.el.pick.addEventListener("click", function () { self.el.input.click(); });
    this.el.input.addEventListener("change", function () {
      if (self.el.input.files.length) self.choose(self.el.input.files[0]);
      self.el.input.value = "";
    });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
        zone.classList.add("is-dragover");
      });
    });
    ["dragleave", "dragend"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("is-dragover"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("is-dragover");
      var files = event.dataTransfer ? event.dataTransfer.files : null;
      if (!files || !files.length) return;
      if (files.length > 1) {
        self.status("Drop one file at a time.", "error");
        return;
      }
      self.choose(files[0]);
    });
    this.el.pause.addEventListener("click", function () { self.pause(); });
    this.el["resume-btn"].addEventListener("click", function () { self.resume(); });
    this.el.cancel.addEventListener("click", function () { self.cancel(); });
    window.addEventListener("online", function () {
      if (self.waitingForNetwork && self.upload) {
        self.waitingForNetwork = false;
        self.status("Back online: resuming…", "info");
        self.start();
      }
    });
    window.addEventListener("offline", function () {
      if (self.upload && !self.paused) self.status("Connection lost: the upload continues when you are back online.", "warn");
    });
  };

  Uploader.prototype.status = function (text, kind) {
    this.el.status.textContent = text || "";
    this.el.status.dataset.kind = kind || "info";
  };

  Uploader.prototype.validate = function (file) {
    if (this.accept.length && this.accept.indexOf(extensionOf(file.name)) < 0) {
      return "“" + file.name + "” is not an accepted file type. Choose a " + this.accept.join(", ") + " file.";
    }
    if (this.maxBytes && file.size > this.maxBytes) {
      return "“" + file.name + "” is " + humanBytes(file.size) + "; the largest file you can upload is " + humanBytes(this.maxBytes) + ".";
    }
    if (file.size === 0) return "“" + file.name + "” is empty.";
    return null;
  };

  Uploader.prototype.choose = function (file) {
    if (this.upload && !this.done) {
      this.status("An upload is in progress: pause or cancel it first.", "error");
      return;
    }
    var problem = this.validate(file);
    if (problem) {
      this.status(problem, "error");
      return;
    }
    if (!window.tus || !window.tus.isSupported) {
      this.status("This browser cannot upload files in pieces. Use a current browser.", "error");
      return;
    }
    this.file = file;
    this.done = false;
    this.paused = false;
    this.samples = [];
    this.el.filename.textContent = file.name;
    this.el.filesize.textContent = humanBytes(file.size);
    this.el.progress.hidden = false;
    this.el.resume.hidden = true;
    this.root.classList.add("is-uploading");
    this.setPaused(false);
    this.render(0, file.size);
    this.create(file);
  };

  Uploader.prototype.create = function (file) {
    var self = this;
    this.upload = new window.tus.Upload(file, {
      endpoint: this.endpoint,
      chunkSize: this.chunkSize,
      retryDelays: RETRY_DELAYS,
      removeFingerprintOnSuccess: true,
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream", purpose: this.purpose },
      headers: { "X-CSRFToken": this.csrf },
      onProgress: function (sent, total) { self.render(sent, total); },
      onShouldRetry: function (err) {
        var status = err.originalResponse ? err.originalResponse.getStatus() : 0;
        var retryable = status === 0 || status >= 500 || status === 409 || status === 423 || status === 460;
        if (retryable && navigator.onLine) self.status("Connection interrupted: retrying…", "warn");
        return retryable && navigator.onLine;
      },
      onChunkComplete: function () {
        if (!self.paused && self.el.status.dataset.kind === "warn" && navigator.onLine) self.status("", "info");
      },
      onError: function (err) { self.failed(err); },
      onSuccess: function () { self.succeeded(); }
    });
    this.status("Preparing…", "info");
    this.upload.findPreviousUploads().then(function (previous) {
      if (previous.length) {
        self.upload.resumeFromPreviousUpload(previous[0]);
        self.status("Resuming an earlier upload of this file…", "info");
      }
      self.start();
    });
  };

  Uploader.prototype.start = function () {
    this.samples = [];
    this.upload.start();
    if (this.el.status.dataset.kind !== "warn") this.status("Uploading…", "info");
  };

  Uploader.prototype.render = function (sent, total) {
    var percent = total ? (100 * sent) / total : 0;
    this.el.fill.style.width = percent.toFixed(1) + "%";
    this.el.bar.setAttribute("aria-valuenow", percent.toFixed(0));
    this.el.percent.textContent = (percent >= 99.95 && sent < total ? "99.9" : percent.toFixed(percent < 10 ? 1 : 0)) + " %";
    this.el.bytes.textContent = humanBytes(sent) + " of " + humanBytes(total);
    var now = performance.now();
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 8000) this.samples.shift();
    var first = this.samples[0];
    var elapsed = (now - first[0]) / 1000;
    if (elapsed > 0.5 && sent > first[1]) {
      var speed = (sent - first[1]) / elapsed;
      this.el.speed.textContent = humanBytes(Math.round(speed)) + "/s";
      this.el.eta.textContent = sent < total ? humanDuration((total - sent) / speed) + " left" : "";
    }
  };

  Uploader.prototype.setPaused = function (paused) {
    this.paused = paused;
    this.el.pause.hidden = paused;
    this.el["resume-btn"].hidden = !paused;
    this.root.classList.toggle("is-paused", paused);
  };

  Uploader.prototype.pause = function () {
    if (!this.upload) return;
    this.upload.abort();
    this.setPaused(true);
    this.el.speed.textContent = "";
    this.el.eta.textContent = "";
    this.status("Paused. Resume whenever you like; it continues where it stopped (also after a page reload).", "info");
    this.el["resume-btn"].focus();
  };

  Uploader.prototype.resume = function () {
    if (!this.upload) return;
    this.waitingForNetwork = false;
    this.setPaused(false);
    this.start();
    this.el.pause.focus();
  };

  Uploader.prototype.cancel = function () {
    if (!this.upload) return;
    var self = this;
    var upload = this.upload;
    this.upload = null;
    upload.abort(true).then(function () {
      self.reset();
      self.status("Upload cancelled.", "info");
    }, function (err) {
      self.reset();
      self.status("Upload cancelled (the server could not be told: " + serverMessage(err) + ").", "warn");
    });
  };

  Uploader.prototype.reset = function () {
    this.el.progress.hidden = true;
    this.root.classList.remove("is-uploading", "is-paused");
    this.file = null;
    this.upload = null;
    this.showResumable();
  };

  Uploader.prototype.failed = function (err) {
    this.el.speed.textContent = "";
    this.el.eta.textContent = "";
    if (!navigator.onLine) {
      // Offline: tus-js-client stops retrying; pick up again on the browser's "online" event.
      this.waitingForNetwork = true;
      this.setPaused(true);
      this.status("Connection lost: the upload continues when you are back online (or press Resume).", "warn");
      return;
    }
    this.setPaused(true);
    var status = err && err.originalResponse ? err.originalResponse.getStatus() : 0;
    var message = serverMessage(err);
    if (status >= 400 && status < 500 && status !== 409 && status !== 423) {
      this.status("Upload refused: " + message, "error");
    } else {
      this.status("Upload interrupted: " + message + " Press Resume to try again.", "error");
    }
  };

  Uploader.prototype.succeeded = function () {
    this.done = true;
    var url = this.upload.url || "";
    var id = url.replace(/\/+$/, "").split("/").pop();
    this.render(this.file.size, this.file.size);
    this.el.pause.hidden = true;
    this.el["resume-btn"].hidden = true;
    this.el.cancel.hidden = true;
    this.el.speed.textContent = "";
    this.el.eta.textContent = "";
    this.root.classList.remove("is-paused");
    this.root.classList.add("is-done");
    this.status("Upload complete: " + this.file.name + ".", "ok");
    this.root.dataset.uploadId = id;
    this.root.dispatchEvent(new CustomEvent("p360:upload-complete", {
      bubbles: true, detail: { id: id, url: url, filename: this.file.name, size: this.file.size }
    }));
    if (this.next) window.location.assign(this.next.replace("{id}", encodeURIComponent(id)));
  };

  /* Unfinished uploads this browser remembers for this endpoint (after a reload or a closed tab). */
  Uploader.prototype.showResumable = function () {
    var self = this;
    var storage = window.tus && window.tus.defaultOptions && window.tus.defaultOptions.urlStorage;
    if (!storage || !storage.findAllUploads) return;
    storage.findAllUploads().then(function (all) {
      var mine = all.filter(function (item) {
        return item.uploadUrl && item.uploadUrl.indexOf(self.endpoint) >= 0;
      });
      var box = self.el.resume;
      box.textContent = "";
      if (!mine.length || self.upload) { box.hidden = true; return; }
      mine.forEach(function (item) {
        var line = document.createElement("p");
        var name = (item.metadata && item.metadata.filename) || "a file";
        line.appendChild(document.createTextNode("Unfinished upload of “" + name + "” (" + humanBytes(item.size || 0) + "): choose the same file again to continue where it stopped. "));
        var forget = document.createElement("button");
        forget.type = "button";
        forget.className = "linkish";
        forget.textContent = "Discard it";
        forget.addEventListener("click", function () {
          var forgetLocally = function () {
            storage.removeUpload(item.urlStorageKey).then(function () { self.showResumable(); });
          };
          // Tell the server too (its part file is deleted now instead of at expiry); forget it either way.
          window.tus.Upload.terminate(item.uploadUrl, { headers: { "X-CSRFToken": self.csrf } }).then(forgetLocally, forgetLocally);
        });
        line.appendChild(forget);
        box.appendChild(line);
      });
      box.hidden = false;
    });
  };

  function init() {
    document.querySelectorAll("[data-uploader]").forEach(function (root) {
      if (!root.p360Uploader) root.p360Uploader = new Uploader(root);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
