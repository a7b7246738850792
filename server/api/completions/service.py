"""One text completion request: the model it names, its prompt (text, or token ids checked against the
vocabulary), the generation, and the text `echo` puts before the answer."""

from dataclasses import dataclass

from server.api.completions.protocol import CompletionRequest
from server.core.engine.admission import Admission
from server.core.engine.generation import Generation, resolve_model, start_generation
from server.core.engine.wrapper import ChatEngine
from server.core.settings import ServerSettings

ROUTE = "/v1/completions"


@dataclass
class CompletionService:
    engine: ChatEngine
    settings: ServerSettings
    admission: Admission

    def start(self, body: CompletionRequest) -> tuple[Generation, str | None]:
        """The generation, and the prompt's text when `echo` asks for it."""
        model = resolve_model(body.model, self.engine)
        if isinstance(body.prompt, str):
            prompt_ids = self.engine.text_prompt_ids(body.prompt)
        else:
            prompt_ids = [int(token) for token in body.prompt]
            self.engine.check_token_ids(prompt_ids, "prompt")
        generation = start_generation(body, self.engine, model, ROUTE, "cmpl-", prompt_ids, "prompt",
                                      self.settings.max_choices, self.admission, loop_guard=self.settings.loop_guard)
        echo = None
        if body.echo:
            echo = body.prompt if isinstance(body.prompt, str) else self.engine.tokenizer.decode(prompt_ids)
        return generation, echo
