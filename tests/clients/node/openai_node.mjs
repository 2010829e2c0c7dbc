// The official openai Node SDK against BMO; prints one JSON line of results for the pytest side.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.BMO_BASE_URL, apiKey: process.env.BMO_TOKEN, maxRetries: 0 });
const model = process.env.BMO_MODEL;
const out = {};
const chat = await client.chat.completions.create({ model, messages: [{ role: "user", content: "hi node" }] });
out.chat = chat.choices[0].message.content;
const stream = await client.chat.completions.create({ model, stream: true, messages: [{ role: "user", content: "flow node" }] });
out.stream = "";
for await (const chunk of stream) out.stream += chunk.choices[0]?.delta?.content ?? "";
const tools = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "weather?" }],
  tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }],
});
out.tool_call = tools.choices[0].message.tool_calls?.[0]?.function?.name ?? null;
const first = await client.responses.create({ model, input: "resp node" });
const second = await client.responses.create({ input: "resp node 2", previous_response_id: first.id });
out.responses = [first.output_text, second.output_text];
const rstream = await client.responses.create({ model, input: "rstream node", stream: true });
out.responses_stream = "";
for await (const event of rstream) if (event.type === "response.output_text.delta") out.responses_stream += event.delta;
console.log(JSON.stringify(out));
