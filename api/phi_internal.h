/* For the programs built beside the library (phi-server): the Model behind a phi_model, for the
 * parts phi.h does not offer (several sequences in one batched forward pass). */
#ifndef PHI_API_INTERNAL_H
#define PHI_API_INTERNAL_H

#include "model/model.h"
#include "phi.h"

const Model *phi_model_get(const phi_model *m);

#endif
