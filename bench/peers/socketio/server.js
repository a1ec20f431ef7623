// The Socket.IO peer of Kefu's benchmark: the chat server a Socket.IO user
// would write, nothing tuned beyond what the docs recommend.
//
//   node server.js [port]        (or PORT=...; 0 or nothing picks a free port)
//
// Prints `listening <port>` on stdout once it accepts connections; the Rust
// adapter (bench/src/peers.rs) waits for that line. Node runs JavaScript on
// one thread, so `taskset -c <core>` gives it exactly one core.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

const httpServer = http.createServer();
const io = new Server(httpServer, {
  serveClient: false,
  // The feature Kefu's reconnect story is compared with: a client that comes
  // back within two minutes gets the events it missed and keeps its rooms.
  connectionStateRecovery: {
    maxDisconnectionDuration: 2 * 60 * 1000,
    skipMiddlewares: true,
  },
});

io.on("connection", (socket) => {
  // A member joins one room; the ack tells the client it will now receive
  // everything published there.
  socket.on("join", (room, ack) => {
    if (typeof room !== "string" || room.length === 0) return;
    socket.data.room = room;
    socket.join(room);
    if (typeof ack === "function") ack();
  });

  // Everyone in the room gets the message, the sender included, which is
  // what the load generator measures latency on.
  socket.on("msg", (payload) => {
    const room = socket.data.room;
    if (room !== undefined) io.to(room).emit("msg", payload);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  process.stdout.write(`listening ${httpServer.address().port}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0));
}
