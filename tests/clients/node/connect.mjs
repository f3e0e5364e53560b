// Connects to Streamzy with the official Socket.IO client and its default options (polling
// first, then the upgrade to websocket), asks for the room list and prints what happened as
// one JSON line. Usage: node connect.mjs URL [bot-token]
import { io } from "socket.io-client";

const [url, token] = process.argv.slice(2);
const result = { connected: false, upgraded: false, transports: [], rooms: null, error: null };
const socket = io(url, token ? { auth: { token } } : {});
const done = (code) => {
  socket.close();
  console.log(JSON.stringify(result));
  process.exit(code);
};
socket.io.on("open", () => result.transports.push(socket.io.engine.transport.name));
setTimeout(() => { result.error = result.error || "timeout"; done(1); }, 15000);

socket.on("connect_error", (err) => {
  result.error = { message: err.message, data: err.data ?? null };
  done(0); // a refusal is an answer too: the test reads it
});
socket.on("connect", async () => {
  result.connected = true;
  const upgraded = new Promise((resolve) => {
    if (socket.io.engine.transport.name === "websocket") resolve();
    socket.io.engine.once("upgrade", () => resolve());
  });
  await upgraded;
  result.upgraded = true;
  result.transports.push(socket.io.engine.transport.name);
  result.rooms = await socket.timeout(5000).emitWithAck("rooms", {});
  done(0);
});
