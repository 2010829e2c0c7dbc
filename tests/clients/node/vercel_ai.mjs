// The Vercel AI SDK (ai + @ai-sdk/openai) against BMO: openai(id) is its Responses model, openai.chat(id) chat.
import { createOpenAI } from "@ai-sdk/openai";
import { generateObject, generateText, streamText, tool, stepCountIs } from "ai";
import { z } from "zod";

const openai = createOpenAI({ baseURL: process.env.BMO_BASE_URL, apiKey: process.env.BMO_TOKEN });
const model = process.env.BMO_MODEL;
const out = {};
out.responses = (await generateText({ model: openai(model), prompt: "hi vercel", maxRetries: 0 })).text;
out.chat = (await generateText({ model: openai.chat(model), prompt: "hi vercel chat", maxRetries: 0 })).text;
const streamed = streamText({ model: openai(model), prompt: "flow vercel", maxRetries: 0 });
out.stream = "";
for await (const part of streamed.textStream) out.stream += part;
const getWeather = tool({
  description: "Weather for a city",
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => `sunny in ${city}`,
});
const withTools = await generateText({
  model: openai(model), prompt: "weather?", tools: { get_weather: getWeather }, stopWhen: stepCountIs(3), maxRetries: 0,
});
out.tools = withTools.text;
// Structured output: text.format on the Responses model, response_format on the chat model.
const City = z.object({ name: z.string(), population: z.number() });
out.object = (await generateObject({ model: openai(model), schema: City, prompt: "Oslo?", maxRetries: 0 })).object;
out.chat_object = (await generateObject({ model: openai.chat(model), schema: City, prompt: "Oslo?", maxRetries: 0 })).object;
console.log(JSON.stringify(out));
