// Entry point used by bin/fathom.js.
import { main } from "./main.js";
void main();
