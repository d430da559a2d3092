// What the browser tests need from their environment, with a clear message when it is missing.

export function gatewayEnv() {
  const missing = ['WEIR_URL', 'WEIR_USER', 'WEIR_PASSWORD'].filter((k) => !process.env[k]);
  if (missing.length) {
    throw new Error(
      `the browser tests need a running gateway: set ${missing.join(', ')} ` +
        '(e.g. WEIR_URL=http://127.0.0.1:8080 WEIR_USER=admin WEIR_PASSWORD=...; an admin or operator account). ' +
        'The unit tests alone run with `npm run test:unit`.',
    );
  }
  return {
    url: process.env.WEIR_URL.replace(/\/$/, ''),
    user: process.env.WEIR_USER,
    password: process.env.WEIR_PASSWORD,
    expectTerminals: process.env.WEIR_EXPECT_TERMINALS ? Number(process.env.WEIR_EXPECT_TERMINALS) : 38,
    inspector: process.env.WEIR_INSPECTOR_USER ? { user: process.env.WEIR_INSPECTOR_USER, password: process.env.WEIR_INSPECTOR_PASSWORD || '' } : null,
    alarmTimeoutMs: Number(process.env.WEIR_ALARM_TIMEOUT_S || 90) * 1000,
  };
}

/** The broker the tests publish to as a sensor node: `mqtt://[terminal-id:password@]host:port`.
 * With a user name, that terminal is the one the tests drive (the broker only lets a node
 * publish under its own id); without one, the first registered terminal. */
export function mqttEnv() {
  const url = process.env.WEIR_MQTT_URL;
  if (!url) {
    throw new Error(
      'this test plays a sensor node over MQTT: set WEIR_MQTT_URL=mqtt://[TERMINAL-ID:NODE-PASSWORD@]HOST:PORT ' +
        '(the gateway\'s broker; the node password is the one `weir terminal add` printed).',
    );
  }
  const u = new URL(url);
  if (u.protocol !== 'mqtt:') throw new Error(`WEIR_MQTT_URL must start with mqtt://, not ${u.protocol}`);
  return { url, terminal: decodeURIComponent(u.username) || process.env.WEIR_TEST_TERMINAL || null };
}
