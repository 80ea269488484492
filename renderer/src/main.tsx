import {StrictMode} from "react";
import {createRoot} from "react-dom/client";
import {App} from "./App.js";
import {takeKeyFromUrl} from "./apiKey.js";
import "./styles.css";

takeKeyFromUrl();
createRoot(document.getElementById("root")!).render(<StrictMode><App/></StrictMode>);
