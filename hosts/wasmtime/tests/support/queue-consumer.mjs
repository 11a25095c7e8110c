// The consumer Worker of the tests' Cloudflare Queue: POSTs each message,
// as the queue carried it, to SINK_URL (the fake Graph's /__queue), and
// acknowledges it once that answers 2xx; otherwise the queue retries it.
export default {
  async queue(batch, env) {
    for (const message of batch.messages) {
      const answer = await fetch(env.SINK_URL, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(message.body),
      });
      if (answer.ok) message.ack();
      else message.retry();
    }
  },
};
