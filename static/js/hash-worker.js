/*
 * fxfer: a file's checksums, computed in a Web Worker while the file uploads (static/js/send.js starts them).
 * A worker reads the file once, in order, as a stream, into hash-wasm hashers (static/vendor/hash-wasm,
 * WebAssembly). It does one of two jobs:
 *
 *   - SHA-256 of the whole file (no `partSize`): what recipients compare with `sha256sum`;
 *   - CRC-64/NVME of each part and of the whole file (`partSize`, multipart uploads): S3 checks every part's
 *     bytes against its CRC (a signed header of the part's URL, so each part's CRC is posted as soon as the
 *     read passes the part's end) and the whole file's against the parts' at completion (full-object checksum).
 *
 * Two workers, not one: SHA-256 in WebAssembly runs at a few hundred MiB/s, CRC-64 several times faster. The
 * part PUTs wait only for their CRCs, so the CRC worker runs ahead of them while the SHA-256 worker keeps its
 * own pace, on its own core; both read from the page cache the upload fills anyway.
 *
 * Message in:   {file: Blob, partSize: bytes or 0, scripts: [hash-wasm URLs]}
 * Messages out: {type: "part", partNumber, crc64nvme}   base64 of the part's 8-byte CRC (CRC job)
 *               {type: "done", sha256} or {type: "done", crc64nvme}   hex as sha256sum prints it; base64
 *               {type: "error", message}
 */
/* global hashwasm */
(function () {
  "use strict";

  // CRC-64/NVME (S3's CRC64NVME): polynomial 0xad93d23594c93659, reflected, initial value and final XOR all
  // ones. hash-wasm's CRC-64 takes the reflected polynomial and does the rest.
  var NVME_POLYNOMIAL = "9a6c9329ac4bc9b5";

  function base64(bytes) {
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return self.btoa(binary);
  }

  /* Read the file once, in order, and hand every piece to `take(bytes, end)`, where `end` is the offset just past
     it. The file's stream, not slices of it: Chromium hands a stream over in large pieces with one copy, where
     reading slices costs about twice the CPU (a 1 GiB file: ~1.0 s against ~1.8 s). `cut(offset)`, if given,
     is where a piece must end at the latest (a part's end), so a piece never spans two parts. */
  function readInOrder(file, cut, take) {
    if (!file.size) {
      return Promise.reject(new Error("empty file"));
    }
    var reader = file.stream().getReader();
    var offset = 0;
    function next() {
      return reader.read().then(function (result) {
        if (result.done) {
          if (offset !== file.size) {
            throw new Error("the file changed while it was read");
          }
          return null;
        }
        var bytes = result.value;
        var at = 0;
        while (at < bytes.length) {
          var end = Math.min(offset + bytes.length - at, cut ? cut(offset) : Infinity);
          take(bytes.subarray(at, at + end - offset), end);
          at += end - offset;
          offset = end;
        }
        return next();
      });
    }
    return next();
  }

  /* The SHA-256 of the whole file, hex. */
  function sha256Job(file) {
    return hashwasm.createSHA256().then(function (sha) {
      sha.init();
      return readInOrder(file, null, function (bytes) {
        sha.update(bytes);
      }).then(function () {
        self.postMessage({ type: "done", sha256: sha.digest("hex") });
      });
    });
  }

  /* The CRC-64/NVME of every part (posted as the read passes each part's end) and of the whole file. */
  function crcJob(file, partSize) {
    var size = file.size;
    return Promise.all([hashwasm.createCRC64(NVME_POLYNOMIAL), hashwasm.createCRC64(NVME_POLYNOMIAL)]).then(
      function (hashers) {
        var whole = hashers[0].init();
        var part = hashers[1].init();
        var partNumber = 1;
        // The end of the part holding `offset`: no piece crosses it, so every part's CRC is exact.
        function partEnd(offset) {
          return Math.min(size, (Math.floor(offset / partSize) + 1) * partSize);
        }
        return readInOrder(file, partEnd, function (bytes, end) {
          whole.update(bytes);
          part.update(bytes);
          if (end === size || end % partSize === 0) {
            self.postMessage({ type: "part", partNumber: partNumber, crc64nvme: base64(part.digest("binary")) });
            part.init();
            partNumber += 1;
          }
        }).then(function () {
          self.postMessage({ type: "done", crc64nvme: base64(whole.digest("binary")) });
        });
      }
    );
  }

  var loaded = false;
  self.onmessage = function (event) {
    var job = event.data;
    try {
      if (!loaded) {
        self.importScripts.apply(self, job.scripts);
        loaded = true;
      }
    } catch (error) {
      self.postMessage({ type: "error", message: String(error && error.message) });
      return;
    }
    (job.partSize ? crcJob(job.file, job.partSize) : sha256Job(job.file)).catch(function (error) {
        self.postMessage({ type: "error", message: String(error && error.message) });
      });
  };
})();
