/* For the programs built beside the library (phi-server): the Model behind a phi_model and the
 * adapter behind a phi_lora, for the parts phi.h does not offer (several sequences in one
 * batched forward pass, each with its own adapter set). */
#ifndef PHI_API_INTERNAL_H
#define PHI_API_INTERNAL_H

#include "model/lora.h"
#include "model/model.h"
#include "phi.h"

const Model *phi_model_get(const phi_model *m);
const LoraAdapter *phi_lora_adapter(const phi_lora *a);

#endif
