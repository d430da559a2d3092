// A minimal MQTT 3.1.1 publisher (CONNECT, PUBLISH at QoS 1, DISCONNECT) so the browser tests
// can play a sensor node without another dependency.

import net from 'node:net';

function varint(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 128;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

function str(s) {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

function packet(type, flags, body) {
  return Buffer.concat([Buffer.from([(type << 4) | flags]), varint(body.length), body]);
}

/** Connects to `mqtt://[user[:password]@]host:port`; resolves to `{publish(topic, payload),
 * close()}`. Every step times out after `timeoutMs`. */
export async function connectMqtt(url, { clientId = `weir-dashboard-test-${process.pid}`, timeoutMs = 5000 } = {}) {
  const u = new URL(url);
  const socket = net.connect({ host: u.hostname, port: Number(u.port || 1883) });
  let buf = Buffer.alloc(0);
  const waiting = [];
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      let len = 0;
      let mul = 1;
      let i = 1;
      for (; i < 5; i++) {
        len += (buf[i] & 127) * mul;
        mul *= 128;
        if (!(buf[i] & 128)) break;
      }
      const total = i + 1 + len;
      if (buf.length < total) return;
      const pkt = { type: buf[0] >> 4, body: buf.subarray(i + 1, total) };
      buf = buf.subarray(total);
      const w = waiting.findIndex((x) => x.match(pkt));
      if (w >= 0) waiting.splice(w, 1)[0].resolve(pkt);
    }
  });
  const failures = [];
  socket.on('error', (e) => failures.forEach((f) => f(e)));
  const expect = (match, what) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`MQTT broker at ${u.host}: no ${what} within ${timeoutMs} ms`)), timeoutMs);
      failures.push(reject);
      waiting.push({ match, resolve: (p) => (clearTimeout(timer), resolve(p)) });
    });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', (e) => reject(new Error(`cannot reach the MQTT broker at ${u.host}: ${e.message}`)));
  });
  const user = decodeURIComponent(u.username);
  const pass = decodeURIComponent(u.password);
  const flags = 0x02 | (user ? 0x80 : 0) | (pass ? 0x40 : 0);
  const connack = expect((p) => p.type === 2, 'CONNACK');
  socket.write(
    packet(1, 0, Buffer.concat([str('MQTT'), Buffer.from([4, flags, 0, 30]), str(clientId), user ? str(user) : Buffer.alloc(0), pass ? str(pass) : Buffer.alloc(0)])),
  );
  const ack = await connack;
  if (ack.body[1] !== 0) {
    socket.destroy();
    throw new Error(`the MQTT broker at ${u.host} refused the connection (return code ${ack.body[1]}: check user and password)`);
  }
  let nextId = 1;
  return {
    async publish(topic, payload, { retain = false } = {}) {
      const id = nextId++;
      const idBuf = Buffer.alloc(2);
      idBuf.writeUInt16BE(id);
      const puback = expect((p) => p.type === 4 && p.body.readUInt16BE(0) === id, `PUBACK for ${topic}`);
      socket.write(packet(3, 0x02 | (retain ? 1 : 0), Buffer.concat([str(topic), idBuf, Buffer.from(payload)])));
      await puback;
    },
    close() {
      socket.end(packet(14, 0, Buffer.alloc(0)));
    },
  };
}

/** Readings as the protocol wants them: `ts` RFC 3339 UTC without fractions. */
export function reading(ms, values) {
  return { ts: new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z'), ...values };
}

/** Publishes `readings` for `terminal` in messages of at most 64, with a fresh boot number. */
export async function publishReadings(client, terminal, readings, { prefix = 'weir', boot = Math.floor(Date.now() / 1000) } = {}) {
  for (let i = 0, seq = 0; i < readings.length; i += 64, seq++) {
    await client.publish(`${prefix}/terminals/${terminal}/telemetry`, JSON.stringify({ boot, seq, readings: readings.slice(i, i + 64) }));
  }
}
