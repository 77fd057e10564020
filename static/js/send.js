/*
 * fxfer: the uploader of the New transfer page, of a pending transfer's page, and of a guest's upload page
 * (an upload request: the same endpoints under the guest's URLs, with the request's limits).
 *
 * Uppy (the vendored 5.x bundle, global `Uppy`) picks the files, shows per-file and total progress and sends
 * the bytes straight to S3. Every decision comes from our server, through the endpoints named in the
 * <script type="application/json" id="uploader-config"> element:
 *
 *   Send              POST the form and the declared files (name, size, type) as JSON: the server checks the
 *                     policy and answers with the transfer id and, per file, its id, mode and part size, and
 *                     how it goes up (what its authorize would answer: a small file's presigned POST, a large
 *                     one's new multipart upload; no round trip more)
 *   <file>authorize   how to upload one file: a presigned POST (small files) or a multipart upload, created
 *                     or resumed by the server (its part URLs come from <file>parts)
 *   <file>parts       part URLs, a batch (up to ~20) at a time: never one request per part. Each URL is signed
 *                     for its part's CRC-64/NVME (the worker computes them as it reads the file, well ahead of
 *                     the PUTs), and S3 refuses a part whose bytes do not match
 *   <file>parts/list  the parts S3 already holds (resume after a reload)
 *   <file>complete    the server assembles the parts and verifies the object; it gets the whole file's SHA-256
 *                     and CRC-64/NVME, which S3 checks against the parts' CRCs
 *   <file>done        the server verifies a POSTed object (the same check the S3 event triggers)
 *   <file>cancel      the sender removed the file
 *
 * After Send, the address becomes the transfer's own page, so a reload lands on a page that knows the
 * transfer: GoldenRetriever restores the file list (and small files), the sender adds any large file again,
 * and only the parts S3 does not hold yet are sent.
 *
 * Checksums (static/js/hash-worker.js, hash-wasm): from the moment a file is added, a Web Worker reads it once
 * for its SHA-256 (a small file's goes with Send: S3 checks the POSTed body against it) and, for a file that
 * goes up in parts, its CRC-64/NVME, per part and whole, with the part size the server will plan (checked when
 * the server answers). Recipients see the SHA-256.
 *
 * No inline script, no build step: data comes in through the JSON element, the CSRF token from the form.
 */
(function () {
  "use strict";

  // The worker's and hash-wasm's URLs (static files, possibly with hashed names) come with this script's tag.
  var thisScript = document.currentScript;
  var hashWorkerUrl = thisScript && thisScript.getAttribute("data-hash-worker");
  var hashWasmUrls = ((thisScript && thisScript.getAttribute("data-hash-wasm")) || "")
    .split(" ")
    .filter(Boolean)
    .map(function (url) {
      return new URL(url, window.location.href).href;
    });

  var configElement = document.getElementById("uploader-config");
  if (!configElement || !window.Uppy) {
    return;
  }
  var config = JSON.parse(configElement.textContent);
  var text = config.strings;
  var form = document.getElementById("transfer-form");
  var statusBox = document.getElementById("upload-status");
  var summary = document.getElementById("error-summary");
  var sendButton = document.getElementById("send-button");
  var MiB = 1024 * 1024;

  var transferId = config.transferId;
  // Files of the transfer still to upload, as the server knows them: [{fileId, name, size}].
  var serverFiles = config.files.slice();
  var released = false;
  var quietRemoval = false;
  var partUrlCaches = {}; // Uppy file id -> {uploadId, urls: {n: {url, expiresAt, crc}}, pending: {n: Promise}}
  var hashJobs = {}; // Uppy file id -> {data, sha256: Promise, crc: Promise|null, parts: {n: crc}, waiters, failed}
  var partsListed = {}; // Uppy file id -> {uploadId, parts}: what authorize found in S3, for listParts
  var firstUploads = {}; // Uppy file id -> its POST policy or multipart upload, from Send's answer: used once
  var partSizes = new WeakMap(); // file data (Blob) -> the server's part size
  var verification = {}; // Uppy file id -> the server's answer to complete

  // --- talking to our server ----------------------------------------------------------------------------

  function csrfToken() {
    return form.querySelector("input[name=csrfmiddlewaretoken]").value;
  }

  function interpolate(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_, name) {
      return values[name] === undefined ? "" : String(values[name]);
    });
  }

  function ServerError(status, body) {
    this.name = "ServerError";
    this.status = status;
    this.code = body.error || "server";
    this.message = body.message || text.network;
    this.body = body;
  }
  ServerError.prototype = Object.create(Error.prototype);

  function api(method, url, body) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(
      function (response) {
        return response.json().then(
          function (data) {
            if (!response.ok) {
              throw new ServerError(response.status, data);
            }
            return data;
          },
          function () {
            throw new ServerError(response.status, {});
          }
        );
      },
      function () {
        throw new ServerError(0, {});
      }
    );
  }

  function fileUrl(file, action) {
    return config.fileUrl.replace("TRANSFER", transferId).replace("FILE", file.meta.fileId) + action;
  }

  // --- messages on the page -----------------------------------------------------------------------------

  function showStatus(message, kind, items) {
    statusBox.className = "upload-status" + (kind ? " " + kind : "");
    statusBox.textContent = message || "";
    if (items && items.length) {
      var list = document.createElement("ul");
      items.forEach(function (item) {
        var entry = document.createElement("li");
        entry.textContent = item;
        list.appendChild(entry);
      });
      statusBox.appendChild(list);
    }
  }

  function clearErrors() {
    if (summary) {
      summary.hidden = true;
    }
    form.querySelectorAll(".field-error").forEach(function (element) {
      element.hidden = true;
      element.textContent = "";
    });
    form.querySelectorAll("[aria-invalid]").forEach(function (element) {
      element.removeAttribute("aria-invalid");
    });
  }

  /* Errors next to their fields and in a summary that takes the focus (so screen readers announce it). */
  function showErrors(message, fields) {
    var list = document.getElementById("error-summary-list");
    list.textContent = "";
    Object.keys(fields || {}).forEach(function (name) {
      var target = name === "files" ? document.getElementById("uploader") : document.getElementById("id_" + name);
      var errorElement = document.getElementById("id_" + name + "-error");
      var messages = fields[name].join(" ");
      if (errorElement) {
        errorElement.textContent = messages;
        errorElement.hidden = false;
      }
      if (target && target.id !== "uploader") {
        target.setAttribute("aria-invalid", "true");
        target.setAttribute("aria-describedby", errorElement ? errorElement.id : "");
      }
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = name === "files" ? "#field-files" : target ? "#id_" + name : "#transfer-form";
      link.textContent = messages;
      item.appendChild(link);
      list.appendChild(item);
    });
    document.getElementById("error-summary-message").textContent = message;
    summary.hidden = false;
    summary.focus();
  }

  // --- Uppy --------------------------------------------------------------------------------------------

  function extensionOf(name) {
    var base = name.replace(/[. ]+$/, "").toLowerCase();
    return base.indexOf(".") === -1 ? "" : base.split(".").pop();
  }

  function unclaimedServerFile(file) {
    var claimed = {};
    uppy.getFiles().forEach(function (other) {
      if (other.id !== file.id && other.meta.fileId) {
        claimed[other.meta.fileId] = true;
      }
    });
    return serverFiles.filter(function (server) {
      return !claimed[server.fileId] && server.name === file.name && server.size === file.size;
    })[0];
  }

  var uppy = new Uppy.Uppy({
    id: "fxfer-send",
    // Uppy's own texts in the page's language (transfers/views/uppy_locale.py); Uppy's English otherwise.
    locale: { strings: config.uppyStrings || {} },
    autoProceed: false,
    restrictions: {
      maxFileSize: config.maxFileSize,
      maxNumberOfFiles: config.maxFiles,
      maxTotalFileSize: config.maxTotalSize,
      minFileSize: 1,
    },
    onBeforeFileAdded: function (file) {
      if (config.blockedExtensions.indexOf(extensionOf(file.name)) !== -1) {
        uppy.info(file.name + ": " + text.blocked, "error", 6000);
        return false;
      }
      // An upload request may ask for some types only (the server checks again).
      var allowed = config.allowedExtensions || [];
      if (allowed.length && allowed.indexOf(extensionOf(file.name)) === -1) {
        uppy.info(file.name + ": " + text.notAllowed, "error", 6000);
        return false;
      }
      // Once the transfer exists, only its own files may be added (again).
      if (transferId && !file.meta.fileId && !unclaimedServerFile(file)) {
        uppy.info(interpolate(text.notInTransfer, { name: file.name }), "error", 6000);
        return false;
      }
      return true;
    },
  });

  uppy.use(Uppy.Dashboard, {
    inline: true,
    target: "#uploader",
    width: "100%",
    height: 340,
    hideUploadButton: true,
    // Uppy's "time left" divides what is left by the average speed since the start, so a slow first second
    // (signing, TLS set-up, a busy link) showed "2h 19m left" for a 14-second upload. The percentage and each
    // file's own progress are true; an estimate that wrong is worse than none.
    hideProgressDetails: true,
    proudlyDisplayPoweredByUppy: false,
    showRemoveButtonAfterComplete: false,
    fileManagerSelectionType: "files",
    theme: "light",
  });

  uppy.use(Uppy.AwsS3, {
    // Requests at once (part PUTs and our signing calls share this queue). Chromium opens at most 6 connections
    // to S3 (HTTP/1.1) and queues the rest itself; the other slots let a batch of part URLs be signed, or the
    // next file start, while 6 PUTs are in flight, so no connection waits for us (boto3 runs 10 threads).
    limit: 10,
    retryDelays: [0, 1000, 3000, 5000, 10000],
    shouldUseMultipart: function (file) {
      return file.meta.mode === "multipart";
    },
    // Uppy hands this the file's data: the part size the server planned for it.
    getChunkSize: function (data) {
      return partSizes.get(data) || Math.max(5 * MiB, Math.ceil(data.size / 10000));
    },

    getUploadParameters: function (file) {
      return authorize(file).then(function (found) {
        return { method: "POST", url: found.url, fields: found.fields };
      });
    },

    createMultipartUpload: function (file) {
      return authorizeMultipart(file).then(function (found) {
        return { uploadId: found.uploadId, key: found.key };
      });
    },

    signPart: function (file, part) {
      return partUrl(file, part.uploadId, part.partNumber).then(function (signed) {
        // The CRC is a signed header: S3 checks the part's bytes against it.
        return { url: signed.url, headers: { "x-amz-checksum-crc64nvme": signed.crc } };
      });
    },

    listParts: function (file, upload) {
      // authorize has just listed them (the preprocessor below calls it before every upload): no second call.
      var known = partsListed[file.id];
      delete partsListed[file.id];
      if (known && known.uploadId === upload.uploadId) {
        return Promise.resolve(known.parts);
      }
      var url = fileUrl(file, "parts/list") + "?uploadId=" + encodeURIComponent(upload.uploadId);
      return api("GET", url).then(function (answer) {
        return answer.parts;
      });
    },

    completeMultipartUpload: function (file, upload) {
      var job = hashJob(uppy.getFile(file.id) || file);
      return Promise.all([job.sha256, job.crc])
        .then(function (sums) {
          return api("POST", fileUrl(file, "complete"), {
            uploadId: upload.uploadId,
            sha256: sums[0],
            crc64nvme: sums[1],
          });
        })
        .then(function (result) {
          verification[file.id] = result;
          return {};
        });
    },

    // A failed upload keeps its multipart upload at the server, so a retry sends only the missing parts;
    // removing the file (the `file-removed` handler below) is what cancels it there.
    abortMultipartUpload: function () {
      return Promise.resolve();
    },
  });

  uppy.use(Uppy.GoldenRetriever, { serviceWorker: false });

  // --- multipart: part URLs a batch at a time ---------------------------------------------------------------

  function cacheFor(file, uploadId) {
    var cache = partUrlCaches[file.id];
    if (!cache || cache.uploadId !== uploadId) {
      cache = partUrlCaches[file.id] = { uploadId: uploadId, urls: {}, pending: {} };
    }
    return cache;
  }

  function remember(cache, partUrls, expiresAt, crcs) {
    var expires = Date.parse(expiresAt);
    Object.keys(partUrls).forEach(function (number) {
      cache.urls[number] = { url: partUrls[number], expiresAt: expires, crc: crcs[number] };
    });
  }

  function fresh(cache, number) {
    var known = cache.urls[number];
    return known && known.expiresAt - Date.now() > 60 * 1000;
  }

  /* How a file goes up: what Send's answer brought for it, once (no round trip before the bytes move; a POST
     policy only while it has a minute left); else (a retry, a resumed upload, files beyond the first few) the
     server's answer now. */
  function authorize(file) {
    var first = firstUploads[file.id];
    delete firstUploads[file.id];
    if (first && (first.mode === "multipart" || Date.parse(first.expiresAt) - Date.now() > 60 * 1000)) {
      return Promise.resolve(first);
    }
    return api("POST", fileUrl(file, "authorize"), {});
  }

  function authorizeMultipart(file) {
    return authorize(file).then(function (found) {
      partsListed[file.id] = { uploadId: found.uploadId, parts: found.partsDone || [] };
      uppy.setFileMeta(file.id, { partCount: found.partCount, partSize: found.partSize });
      hashJob(uppy.getFile(file.id)); // the server's part size: the CRCs the PUTs need (a second read if not planned)
      return found;
    });
  }

  /* The URL of one part, signed for its CRC ({url, crc}). Waits for the part's CRC, then asks for it and the
     next parts whose CRCs are known and that have no fresh URL yet, up to one batch: the worker's CRCs keep ahead
     of the PUTs, so after the first parts a batch covers several and no PUT waits long for signing. */
  function partUrl(file, uploadId, partNumber) {
    var cache = cacheFor(file, uploadId);
    if (fresh(cache, partNumber)) {
      return Promise.resolve(cache.urls[partNumber]);
    }
    var job = hashJob(uppy.getFile(file.id) || file);
    return partChecksum(job, partNumber).then(function signed() {
      if (fresh(cache, partNumber)) {
        return cache.urls[partNumber];
      }
      if (!cache.pending[partNumber] && cache.signing) {
        // One signing call per file at a time: the CRCs that arrive meanwhile go together in the next batch.
        return cache.signing.then(signed, signed);
      }
      if (!cache.pending[partNumber]) {
        var count = uppy.getFile(file.id).meta.partCount || partNumber;
        var crcs = {};
        var numbers = [];
        for (var n = partNumber; n <= count && numbers.length < config.partUrlBatch && job.parts[n]; n++) {
          if (!fresh(cache, n) && !cache.pending[n]) {
            crcs[n] = job.parts[n];
            numbers.push(n);
          }
        }
        var request = api("POST", fileUrl(file, "parts"), { uploadId: uploadId, parts: crcs }).then(function (signed) {
          remember(cache, signed.partUrls, signed.expiresAt, crcs);
        });
        numbers.forEach(function (number) {
          cache.pending[number] = request;
        });
        cache.signing = request;
        request
          .catch(function () {})
          .then(function () {
            cache.signing = null;
            numbers.forEach(function (number) {
              delete cache.pending[number];
            });
          });
      }
      return cache.pending[partNumber].then(function () {
        return cache.urls[partNumber];
      });
    });
  }

  // --- checksums: Web Workers (static/js/hash-worker.js) ------------------------------------------------------

  /* A worker must come from the page's origin: when static files are served from another (a CDN), a blob:
     worker imports the script from there. */
  var blobWorkerUrl = null;
  function workerUrl() {
    var url = new URL(hashWorkerUrl, window.location.href);
    if (url.origin === window.location.origin) {
      return url.href;
    }
    if (!blobWorkerUrl) {
      var source = "importScripts(" + JSON.stringify(url.href) + ");";
      blobWorkerUrl = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    }
    return blobWorkerUrl;
  }

  /* One worker kept ready, hash-wasm loaded and compiled (~0.15 s): the next file's read starts at once, so a
     file added just before Send has its first part's CRC, which its first PUT waits for, that much sooner. */
  var readyWorker = null;
  function newWorker(ready) {
    var worker = new Worker(workerUrl());
    if (ready) {
      worker.postMessage({ scripts: hashWasmUrls });
    }
    return worker;
  }
  function makeReady() {
    try {
      readyWorker = newWorker(true);
    } catch (error) {
      readyWorker = null; // the next file's job starts its own (and says why it cannot)
    }
  }
  function takeWorker() {
    var worker = readyWorker || newWorker(false);
    makeReady(); // for the next file
    return worker;
  }

  function runWorker(data, partSize, withSha256, onPart, workers) {
    return new Promise(function (resolve, reject) {
      var worker;
      try {
        worker = takeWorker();
      } catch (error) {
        reject(error);
        return;
      }
      workers.push(worker);
      worker.onmessage = function (event) {
        var message = event.data;
        if (message.type === "part") {
          onPart(message.partNumber, message.crc64nvme);
          return;
        }
        worker.terminate();
        if (message.type === "done") {
          resolve(message);
        } else {
          reject(new Error(message.message || "checksum"));
        }
      };
      worker.onerror = function (event) {
        worker.terminate();
        reject(new Error(event.message || "checksum"));
      };
      worker.postMessage({ file: data, partSize: partSize || 0, sha256: withSha256, scripts: hashWasmUrls });
    });
  }

  /* The part size the server will plan for a file of `size` bytes (transfers/policy.py part_layout, its numbers
     in config.partPlan), 0 below the multipart size. The server decides: this only lets one read of the file
     give the SHA-256 and the parts' CRCs from the moment the file is added. */
  function plannedPartSize(size) {
    var plan = config.partPlan;
    if (!plan || size < plan.from) {
      return 0;
    }
    var partSize = plan.partSize;
    if (Math.ceil(size / partSize) > plan.maxParts) {
      partSize = Math.ceil(size / plan.maxParts / MiB) * MiB;
    }
    return Math.min(partSize, plan.maxPartSize);
  }

  /* The checksum job of a file, started on first use: one worker reads it once for its SHA-256 and, for a file
     the server will upload in parts, its parts' and whole CRC-64/NVME. Should the server plan other parts than
     the page did, a second worker computes their CRCs. */
  function hashJob(file) {
    var job = hashJobs[file.id];
    if (!job || job.data !== file.data) {
      job = hashJobs[file.id] = { data: file.data, parts: {}, waiters: {}, failed: null, workers: [] };
      job.partSize = plannedPartSize(file.size);
      var first = runWorker(file.data, job.partSize, true, crcSink(job, job.partSize), job.workers);
      job.sha256 = first.then(function (message) {
        return message.sha256;
      });
      job.sha256.catch(function () {});
      job.crc = job.partSize ? crcOutcome(job, job.partSize, first) : null;
    }
    var partSize = file.meta.mode === "multipart" && file.meta.partSize;
    if (partSize && partSize !== job.partSize) {
      job.partSize = partSize;
      job.parts = {};
      job.failed = null;
      job.crc = crcOutcome(job, partSize, runWorker(file.data, partSize, false, crcSink(job, partSize), job.workers));
    }
    return job;
  }

  /* Where a worker's part CRCs go: into the job, while its parts are still the ones the job uploads. */
  function crcSink(job, partSize) {
    return function (number, crc) {
      if (job.partSize !== partSize) {
        return;
      }
      job.parts[number] = crc;
      (job.waiters[number] || []).forEach(function (waiter) {
        waiter.resolve(crc);
      });
      delete job.waiters[number];
    };
  }

  /* The whole file's CRC from a worker; its failure fails the parts still waiting for theirs. */
  function crcOutcome(job, partSize, worker) {
    var outcome = worker.then(
      function (message) {
        return message.crc64nvme;
      },
      function (error) {
        if (job.partSize === partSize) {
          job.failed = error;
          Object.keys(job.waiters).forEach(function (number) {
            job.waiters[number].forEach(function (waiter) {
              waiter.reject(error);
            });
          });
          job.waiters = {};
        }
        throw error;
      }
    );
    outcome.catch(function () {});
    return outcome;
  }

  /* A removed file's workers stop: a large file's hashing would otherwise run on for nothing. */
  function hashStop(file) {
    var job = hashJobs[file.id];
    if (job) {
      job.workers.forEach(function (worker) {
        worker.terminate();
      });
      delete hashJobs[file.id];
    }
  }

  function partChecksum(job, number) {
    if (job.parts[number]) {
      return Promise.resolve(job.parts[number]);
    }
    if (job.failed) {
      return Promise.reject(job.failed);
    }
    return new Promise(function (resolve, reject) {
      (job.waiters[number] = job.waiters[number] || []).push({ resolve: resolve, reject: reject });
    });
  }

  /* Before the bytes move: each multipart file gets its upload from the server (new or resumed). With the
     upload id in the file's state, Uppy asks listParts first and sends only the parts S3 lacks. */
  uppy.addPreProcessor(function (fileIDs) {
    return Promise.all(
      fileIDs.map(function (id) {
        var file = uppy.getFile(id);
        if (!file || file.meta.mode !== "multipart") {
          return null;
        }
        partSizes.set(file.data, file.meta.partSize);
        return authorizeMultipart(file).then(function (found) {
          uppy.setFileState(id, { s3Multipart: { key: found.key, uploadId: found.uploadId } });
        });
      })
    );
  });

  /* After the bytes: the server verifies each file (size, encryption, integrity) and releases the transfer
     once all are verified. A refused file shows its reason and can be retried. */
  uppy.addPostProcessor(function (fileIDs) {
    return Promise.all(
      fileIDs.map(function (id) {
        var file = uppy.getFile(id);
        if (!file || file.error || file.meta.verified) {
          return null;
        }
        uppy.emit("postprocess-progress", file, { mode: "indeterminate", message: text.verifying });
        var known = verification[id];
        var checked = known && known.outcome === "verified" ? Promise.resolve(known) : api("POST", fileUrl(file, "done"), {});
        return checked.then(
          function (result) {
            delete verification[id];
            released = released || result.released;
            if (result.outcome === "verified") {
              uppy.setFileMeta(id, { verified: true });
            } else {
              uppy.setFileState(id, {
                error: interpolate(text.refused, { name: file.name, reason: result.reason || result.outcome }),
              });
            }
            uppy.emit("postprocess-complete", uppy.getFile(id));
          },
          function (error) {
            uppy.setFileState(id, { error: error.message });
            uppy.emit("postprocess-complete", uppy.getFile(id));
          }
        );
      })
    );
  });

  uppy.on("complete", function () {
    var files = uppy.getFiles();
    var allVerified =
      files.length > 0 &&
      files.every(function (file) {
        return file.meta.verified;
      }) &&
      missingFiles().length === 0;
    if (allVerified) {
      showStatus(released ? text.released : text.allVerified, "ok");
      // The transfer's page now shows it as sent, with its recipients: at once when it was released (that page
      // says so), after a moment otherwise, so the message can be read.
      window.setTimeout(
        function () {
          window.location.assign(config.transferUrl.replace("TRANSFER", transferId));
        },
        released ? 0 : 1200
      );
    } else if (files.some(function (file) { return file.error; })) {
      showStatus(text.someFailed, "problem");
    } else {
      promptForMissing();
    }
  });

  uppy.on("upload-error", function () {
    showStatus(text.someFailed, "problem");
  });

  uppy.on("file-removed", function (file) {
    hashStop(file);
    if (quietRemoval || !transferId || file.meta.transferId !== transferId || file.meta.verified) {
      return;
    }
    serverFiles = serverFiles.filter(function (server) {
      return server.fileId !== file.meta.fileId;
    });
    api("POST", fileUrl(file, "cancel"), {}).then(
      function (result) {
        released = released || result.released;
        promptForMissing();
      },
      function (error) {
        showStatus(error.message, "problem");
      }
    );
  });

  // --- a pending transfer's page: files added again are matched to the server's, and upload at once ----------

  function missingFiles() {
    var present = {};
    uppy.getFiles().forEach(function (file) {
      if (file.meta.fileId && !file.isGhost) {
        present[file.meta.fileId] = true;
      }
    });
    return serverFiles.filter(function (server) {
      return !present[server.fileId];
    });
  }

  function promptForMissing() {
    var missing = missingFiles();
    if (transferId && missing.length) {
      showStatus(
        text.resume,
        "",
        missing.map(function (server) {
          return server.name + " (" + (server.size / MiB).toFixed(1) + " MiB)";
        })
      );
    }
  }

  /* A file added on a pending transfer's page: which of the transfer's files it is, and how the server
     wants it uploaded (the answer of authorize, which also resumes a multipart upload). */
  function claim(file) {
    var server = unclaimedServerFile(file);
    if (!server) {
      return;
    }
    uppy.setFileMeta(file.id, { transferId: transferId, fileId: server.fileId });
    api("POST", fileUrl(uppy.getFile(file.id), "authorize"), {}).then(
      function (found) {
        uppy.setFileMeta(file.id, { mode: found.mode, partSize: found.partSize, partCount: found.partCount });
        hashJob(uppy.getFile(file.id));
        uploadWhenReady();
      },
      function (error) {
        uppy.setFileState(file.id, { error: error.message });
        showStatus(error.message, "problem");
      }
    );
  }

  var uploadScheduled = false;
  function uploadWhenReady() {
    if (!transferId || uploadScheduled) {
      return;
    }
    uploadScheduled = true;
    window.setTimeout(function () {
      uploadScheduled = false;
      var ready = uppy.getFiles().some(function (file) {
        return file.meta.fileId && file.meta.mode && !file.isGhost && !file.progress.uploadStarted;
      });
      if (ready) {
        showStatus(text.uploading);
        uppy.upload().catch(function () {});
      }
      promptForMissing();
    }, 0);
  }

  if (hashWorkerUrl) {
    makeReady();
  }

  uppy.on("file-added", function (file) {
    if (file.data && !file.isGhost && hashWorkerUrl) {
      hashJob(file); // its checksums start at once: a small file's is ready by Send, a large one's gets ahead
    }
    if (transferId && !file.meta.fileId) {
      claim(file);
    } else if (transferId) {
      uploadWhenReady();
    }
  });

  /* GoldenRetriever brought back the files of an earlier visit. Keep only this transfer's unfinished ones
     (and, on the New transfer page, files not sent yet), and start them afresh: the server knows which
     parts arrived. */
  uppy.on("restored", function () {
    var keep = {};
    serverFiles.forEach(function (server) {
      keep[server.fileId] = true;
    });
    quietRemoval = true;
    uppy.getFiles().forEach(function (file) {
      var ours = transferId ? file.meta.transferId === transferId && keep[file.meta.fileId] : !file.meta.fileId;
      if (!ours) {
        uppy.removeFile(file.id);
      }
    });
    quietRemoval = false;
    uppy.setState({ currentUploads: {}, recoveredState: null });
    uppy.resetProgress();
    uploadWhenReady();
  });

  // --- the New transfer page: Send --------------------------------------------------------------------

  /* The SHA-256 of a file sent with one POST (below the multipart size), base64: declared with the file, S3
     refuses a body that does not match it, and the recipient sees it as the file's checksum. A large file's
     goes with its completion instead (its worker runs while the parts go up). */
  function sha256Of(file) {
    if (!file.data || file.size >= config.partPlan.from || !hashWorkerUrl) {
      return Promise.resolve(null);
    }
    return hashJob(file).sha256.then(
      function (hex) {
        var binary = "";
        for (var i = 0; i < hex.length; i += 2) {
          binary += String.fromCharCode(parseInt(hex.substr(i, 2), 16));
        }
        return window.btoa(binary);
      },
      function () {
        return null;
      }
    );
  }

  function formValues() {
    var data = new FormData(form);
    var values = {
      recipients: data.get("recipients") || "",
      subject: data.get("subject") || "",
      message: data.get("message") || "",
      mail_language: data.get("mail_language") || "",
      expiry_amount: data.get("expiry_amount"),
      expiry_unit: data.get("expiry_unit"),
      download_limit: data.get("download_limit"),
      notify_on_download: data.get("notify_on_download") === "on",
      allow_replies: data.get("allow_replies") === "on",
      confirmed_recipients: data.getAll("confirmed_recipients"), // ticked in confirm.js's dialog
    };
    if (values.allow_replies) {
      REPLY_LIMITS.forEach(function (name) {
        values[name] = data.get(name) || "";
      });
    }
    return values;
  }

  /* What each recipient may send back: asked for only while replies are allowed. */
  var REPLY_LIMITS = [
    "reply_max_files",
    "reply_max_file_size",
    "reply_max_file_size_unit",
    "reply_max_total_size",
    "reply_max_total_size_unit",
    "reply_allowed_extensions",
  ];
  var allowReplies = form && form.querySelector("input[name=allow_replies]");
  var replyLimits = document.getElementById("reply-limits");
  function showReplyLimits() {
    if (allowReplies && replyLimits) {
      replyLimits.hidden = !allowReplies.checked;
    }
  }
  if (allowReplies) {
    allowReplies.addEventListener("change", showReplyLimits);
    showReplyLimits();
  }

  function lockForm() {
    form.querySelectorAll("input:not([type=hidden]), textarea, select").forEach(function (element) {
      element.readOnly = true;
      if (element.tagName === "SELECT" || element.type === "checkbox") {
        element.disabled = true;
      }
    });
    if (sendButton) {
      sendButton.disabled = true;
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (transferId) {
      uploadWhenReady();
      return;
    }
    clearErrors();
    var files = uppy.getFiles();
    var values = formValues();
    // Even without files the form goes to the server, which names every missing field at once (files too).
    sendButton.disabled = true;
    showStatus(text.checking);
    Promise.all(files.map(sha256Of))
      .then(function (digests) {
        values.files = files.map(function (file, index) {
          return { name: file.name, size: file.size, type: file.type || "", sha256: digests[index] };
        });
        return api("POST", config.createUrl, values);
      })
      .then(
        function (created) {
          transferId = created.transferId;
          serverFiles = created.files;
          created.files.forEach(function (server, index) {
            uppy.setFileMeta(files[index].id, {
              transferId: transferId,
              fileId: server.fileId,
              mode: server.mode,
              partSize: server.partSize,
            });
            if (server.mode === "multipart") {
              hashJob(uppy.getFile(files[index].id)); // the server's part size, before the upload is created
            }
            if (server.upload) {
              firstUploads[files[index].id] = server.upload;
            }
          });
          // A reload from here on lands on the transfer's page, which resumes the upload.
          window.history.replaceState(null, "", created.url);
          lockForm();
          showStatus(text.uploading);
          uppy.upload().catch(function () {});
        },
        function (error) {
          sendButton.disabled = false;
          showStatus("");
          var fields = error.body && error.body.fields;
          // Field errors are listed one by one; anything else is said once.
          showErrors(fields ? text.fixFields : error.message, fields || {});
        }
      );
  });

  if (transferId) {
    promptForMissing();
  }
})();
