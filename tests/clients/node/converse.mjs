// The official Socket.IO client with default options, speaking the conversation events as a
// bot author would: join, send, edit, react, reply, delete, and collect what the server
// sent back. Prints one JSON line. Usage: node converse.mjs URL bot-token room-id
import { io } from "socket.io-client";

const [url, token, roomArg] = process.argv.slice(2);
const room = Number(roomArg);
const result = { acks: {}, changes: [], messages: [], error: null };
const socket = io(url, { auth: { token } });
const done = (code) => {
  socket.close();
  console.log(JSON.stringify(result));
  process.exit(code);
};
setTimeout(() => { result.error = result.error || "timeout"; done(1); }, 20000);
socket.on("connect_error", (err) => { result.error = err.message; done(1); });
socket.on("message_changed", (change) => result.changes.push(change));
socket.on("message", (message) => result.messages.push(message));
const ask = (event, payload) => socket.timeout(5000).emitWithAck(event, payload);

socket.on("connect", async () => {
  try {
    result.acks.join = await ask("join", { room });
    const sent = await ask("message", { room, client_msg_id: "node-1", text: "hello from node" });
    result.acks.message = sent;
    result.acks.edit = await ask("edit", { room, id: sent.id, text: "hello from node, edited" });
    result.acks.react = await ask("react", { room, id: sent.id, emoji: "🚀" });
    result.acks.reply = await ask("message", { room, client_msg_id: "node-2", text: "a reply",
                                               reply_to: sent.id });
    result.acks.delete = await ask("delete", { room, id: sent.id });
    result.acks.forged = await ask("message_changed", { room });
    const deadline = Date.now() + 5000;
    while (result.changes.length < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    done(0);
  } catch (err) {
    result.error = String(err);
    done(1);
  }
});
