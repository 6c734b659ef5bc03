// The hello tools, in JavaScript.
//
// componentize-js builds this module into a component for the world in
// wit/: the exported interface is the object below, one method per tool,
// and a tool error is thrown as the tool-error record.

import { log } from 'toolshed:runtime/log@0.3.0';

function refusal(code, message, suggestion) {
  return { error: message, category: 'validation-failed', code, recoverable: true, suggestions: [suggestion] };
}

export const helloTools = {
  greet(args) {
    const name = args.name.trim();
    if (!name) {
      throw refusal('NAME_REQUIRED', 'name is required', 'Call greet again with the name of the person to greet.');
    }
    log('info', `greeting ${name}`);
    return { text: `Hello, ${name}!` };
  },
};
