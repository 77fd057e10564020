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
 * The CRC worker hashes every byte once, into its part's CRC; the whole file's CRC is the parts' CRCs combined
 * (crc64Combine), not a second CRC of every byte: the same value, for ~0.6 s less CPU per GiB.
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

  /* The CRC-64/NVME of every part (posted as the read passes each part's end) and of the whole file (the parts'
     combined). */
  function crcJob(file, partSize) {
    var size = file.size;
    return hashwasm.createCRC64(NVME_POLYNOMIAL).then(function (part) {
      part.init();
      var whole = null;
      var partNumber = 1;
      // The end of the part holding `offset`: no piece crosses it, so every part's CRC is exact.
      function partEnd(offset) {
        return Math.min(size, (Math.floor(offset / partSize) + 1) * partSize);
      }
      return readInOrder(file, partEnd, function (bytes, end) {
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
      }).then(function () {
        self.postMessage({ type: "done", crc64nvme: base64(bytesOf(whole)) });
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
    (job.partSize ? crcJob(job.file, job.partSize) : sha256Job(job.file)).catch(function (error) {
        self.postMessage({ type: "error", message: String(error && error.message) });
      });
  };
})();
