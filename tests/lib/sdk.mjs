// Loading the official LeanCloud JS SDK for tests.
//
// The SDK refuses a second `new Realtime({appId})` for the same appId in one process (a
// module-level registry). Tests need several independent connections (Tom and Jerry on
// separate sockets, a client that goes offline and comes back), so each call here loads a
// fresh copy of the SDK bundle: a new module instance with its own registry.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

const PACKAGES = { 5: 'leancloud-realtime', 4: 'leancloud-realtime-v4' };

export function freshSdk(major = 5) {
  const main = require.resolve(PACKAGES[major]);
  delete require.cache[main];
  return require(main);
}

// A Realtime pointed at a ternd (see ../../../shared/spec/interop.md §3).
export function realtime(server, { major = 5, noBinary = false, plugins, pushOfflineMessages } = {}) {
  const sdk = freshSdk(major);
  const opts = {
    appId: server.appId,
    appKey: server.appKey,
    RTMServers: [server.wsUrl],
    noBinary,
  };
  // v5 takes a full URL; v4 a bare host it always reaches over https. Either way `server`
  // keeps the SDK from asking LeanCloud's public router (no outbound request, no 20 s
  // timeout after a reconnect).
  opts.server = major >= 5 ? server.httpUrl : `127.0.0.1:${server.port}`;
  if (plugins) opts.plugins = plugins;
  if (pushOfflineMessages) opts.pushOfflineMessages = true;
  return { sdk, realtime: new sdk.Realtime(opts) };
}
