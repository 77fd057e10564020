/*
 * fxfer: a file's checksums, computed in a Web Worker while the file uploads (static/js/send.js starts it when
 * the file is added). The worker reads the file once, in order, as a stream, into hash-wasm hashers
 * (static/vendor/hash-wasm, WebAssembly):
 *
 *   - the SHA-256 of the whole file: what recipients compare with `sha256sum`;
 *   - with a `partSize` (multipart uploads), the CRC-64/NVME of each part and of the whole file: S3 checks every
 *     part's bytes against its CRC (a signed header of the part's URL, so each part's CRC is posted as soon as
 *     the read passes the part's end) and the whole file's against the parts' at completion (full-object
 *     checksum).
 *
 * One read for both: reading a file costs the browser about as much CPU as hashing it with CRC-64, so a second
 * worker reading the same file for the CRCs cost ~1 s of CPU per GiB, on the cores the upload itself needs.
 * The page plans the part size when the file is added, as the server will; should the server plan another,
 * the page runs a second job for the CRCs alone (`sha256: false`).
 *
 * The whole file's CRC is the parts' CRCs combined (crc64Combine), not a second CRC of every byte: the same
 * value, for ~0.6 s less CPU per GiB.
 *
 * Message in:   {file: Blob, partSize: bytes or 0, sha256: false to skip it, scripts: [hash-wasm URLs]}
 *               {scripts}: no file yet, load and compile hash-wasm (a worker the page keeps ready); a job follows
 * Messages out: {type: "part", partNumber, crc64nvme}   base64 of the part's 8-byte CRC (with a partSize)
 *               {type: "done", sha256, crc64nvme}       hex as sha256sum prints it; base64 (null: not asked)
 *               {type: "error", message}
 */
/* global hashwasm */
(function () {
  "use strict";

  // CRC-64/NVME (S3's CRC64NVME): polynomial 0xad93d23594c93659, reflected, initial value and final XOR all
  // ones. hash-wasm's CRC-64 takes the reflected polynomial and does the rest.
  var NVME_POLYNOMIAL = "9a6c9329ac4bc9b5";

  /* CRC-64/NVME combination, as zlib's crc32_combine (its multmodp and x2nmodp) on 64 bits: for bytes A then B,
     crc(A + B) = crc(A) * x^(8 * |B|) + crc(B), in GF(2)[x] modulo the polynomial, bits reflected. CRCs are
     BigInts here. */
  var POLYNOMIAL = BigInt("0x" + NVME_POLYNOMIAL);
  var ZERO = BigInt(0);
  var ONE = BigInt(1);
  var X0 = ONE << BigInt(63); // x^0 (reflected: the top bit)

  function multModP(a, b) {
    var m = X0;
    var product = ZERO;
    for (;;) {
      if ((a & m) !== ZERO) {
        product ^= b;
        if ((a & (m - ONE)) === ZERO) {
          return product;
        }
      }
      m >>= ONE;
      b = (b & ONE) !== ZERO ? (b >> ONE) ^ POLYNOMIAL : b >> ONE;
    }
  }

  var shifts = {}; // byte count -> x^(8 * count) mod P (a file's parts share one size)
  function xPow8n(count) {
    if (!shifts[count]) {
      var power = X0 >> ONE; // x^1
      power = multModP(power, power); // x^2
      power = multModP(power, power); // x^4
      power = multModP(power, power); // x^8: one byte
      var result = X0;
      for (var n = count; n > 0; n = Math.floor(n / 2)) {
        if (n % 2) {
          result = multModP(power, result);
        }
        power = multModP(power, power);
      }
      shifts[count] = result;
    }
    return shifts[count];
  }

  function crc64Combine(crcA, crcB, lengthB) {
    return multModP(xPow8n(lengthB), crcA) ^ crcB;
  }

  function bigIntOf(bytes) {
    var value = ZERO;
    for (var i = 0; i < bytes.length; i++) {
      value = (value << BigInt(8)) | BigInt(bytes[i]);
    }
    return value;
  }

  function bytesOf(value) {
    var bytes = new Uint8Array(8);
    for (var i = 7; i >= 0; i--) {
      bytes[i] = Number(value & BigInt(0xff));
      value >>= BigInt(8);
    }
    return bytes;
  }

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

  /* One read of the file, in order, for what the job asks: the SHA-256 of the whole file (`sha256`), and with a
     `partSize`, the CRC-64/NVME of every part (posted as the read passes each part's end, before that piece's
     SHA-256, so a part's PUT never waits for the slower hash) and of the whole file (the parts' combined). */
  function checksumJob(file, partSize, withSha256) {
    var size = file.size;
    return Promise.all([
      withSha256 ? hashwasm.createSHA256() : null,
      partSize ? hashwasm.createCRC64(NVME_POLYNOMIAL) : null,
    ]).then(function (hashers) {
      var sha = hashers[0];
      var part = hashers[1];
      var whole = null;
      var partNumber = 1;
      if (sha) {
        sha.init();
      }
      if (part) {
        part.init();
      }
      // The end of the part holding `offset`: no piece crosses it, so every part's CRC is exact.
      function partEnd(offset) {
        return Math.min(size, (Math.floor(offset / partSize) + 1) * partSize);
      }
      return readInOrder(file, part ? partEnd : null, function (bytes, end) {
        if (part) {
          part.update(bytes);
          if (end === size || end % partSize === 0) {
            var digest = part.digest("binary");
            var crc = bigIntOf(digest);
            var length = end - (partNumber - 1) * partSize;
            whole = whole === null ? crc : crc64Combine(whole, crc, length);
            self.postMessage({ type: "part", partNumber: partNumber, crc64nvme: base64(digest) });
            part.init();
            partNumber += 1;
          }
        }
        if (sha) {
          sha.update(bytes);
        }
      }).then(function () {
        self.postMessage({
          type: "done",
          sha256: sha ? sha.digest("hex") : null,
          crc64nvme: part ? base64(bytesOf(whole)) : null,
        });
      });
    });
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
    if (!job.file) {
      // Warming up before any file (the page starts one worker as it loads): the hashers' WebAssembly compiled
      // now, so a file's first part has its CRC ~0.15 s sooner. Its job comes later, in another message.
      Promise.all([hashwasm.createSHA256(), hashwasm.createCRC64(NVME_POLYNOMIAL)]).catch(function () {});
      return;
    }
    checksumJob(job.file, job.partSize || 0, job.sha256 !== false).catch(function (error) {
      self.postMessage({ type: "error", message: String(error && error.message) });
    });
  };
})();
