/*
 * fxfer: a file's checksums, computed in a Web Worker while the file uploads (static/js/send.js starts them).
 * A worker reads the file once, in order, a chunk at a time, into hash-wasm hashers (static/vendor/hash-wasm,
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

  var CHUNK = 8 * 1024 * 1024;
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

  function read(file, start, end) {
    var slice = file.slice(start, end);
    if (slice.arrayBuffer) {
      return slice.arrayBuffer();
    }
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () {
        resolve(reader.result);
      };
      reader.onerror = function () {
        reject(reader.error);
      };
      reader.readAsArrayBuffer(slice);
    });
  }

  /* Read the file in order, a chunk at a time, and hand each chunk to `take(bytes, end)`. */
  function readInOrder(file, chunkEnd, take) {
    var size = file.size;
    function step(offset, pending) {
      return pending.then(function (buffer) {
        var end = chunkEnd(offset);
        // Start reading the next chunk before hashing this one.
        var next = end < size ? read(file, end, chunkEnd(end)) : null;
        take(new Uint8Array(buffer), end);
        return next ? step(end, next) : null;
      });
    }
    return size ? step(0, read(file, 0, chunkEnd(0))) : Promise.reject(new Error("empty file"));
  }

  /* The SHA-256 of the whole file, hex. */
  function sha256Job(file) {
    return hashwasm.createSHA256().then(function (sha) {
      sha.init();
      return readInOrder(
        file,
        function (offset) {
          return Math.min(offset + CHUNK, file.size);
        },
        function (bytes) {
          sha.update(bytes);
        }
      ).then(function () {
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
        // Where the chunk starting at `offset` ends: never across a part's end, so every part's CRC is exact.
        function chunkEnd(offset) {
          return Math.min(offset + CHUNK, size, (Math.floor(offset / partSize) + 1) * partSize);
        }
        return readInOrder(file, chunkEnd, function (bytes, end) {
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
