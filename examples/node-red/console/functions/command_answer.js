// The box's Response, as it came (the page reads `code`, `error` and `data`).
msg.payload = msg.payload && typeof msg.payload === "object" ? msg.payload
    : {transaction: null, status: "error", code: 504, data: {}, error: "no answer"};
msg.statusCode = 200;
msg.headers = {"Cache-Control": "no-store"};
return msg;
